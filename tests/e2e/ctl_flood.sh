#!/bin/bash
# ctl_flood: with the real agent, a guest command making 1-byte writes as fast as it can (many
# tiny STDOUT frames, each credited back) leaves the VM's other execs working: 50 short execs
# run one after another during the flood, each with its own output and status in time. And
# guest text that reaches the terminal (here an exec error naming the command) is made
# harmless: an escape sequence in the command name arrives as '?' on stderr.
. "$(dirname "$0")/../lib/harness.sh"
TOOL=$REPO/build/tests/tools/mlvm
cp "$TOOL" "$T_TMP/mlvm" && chmod 0755 "$T_TMP/mlvm"
export ML_ENV="MATCHLOCK_DATA_DIR=$ML_PREFIX/lib/matchlock"

out=$(as_user timeout 300 "$T_TMP/mlvm" flood 50 2>&1); rc=$?
echo "# $out"
check_eq "50 execs during a 1-byte-write flood: all right" 0 "$rc"
check_contains "flood: the summary covers the 50 execs" "50 execs ran" "$out"
check_contains "flood: the summary says 0 wrong" " 0 wrong" "$out"
frames=$(printf '%s\n' "$out" | sed -n 's/.* bytes in \([0-9]*\) frames.*/\1/p')
bytes=$(printf '%s\n' "$out" | sed -n 's/^flood: \([0-9]*\) bytes in.*/\1/p')
if [ "${frames:-0}" -ge 2000 ] && [ $(( ${bytes:-0} / ${frames:-1} )) -lt 512 ]; then ok "the flood came as many small frames ($frames frames, $bytes bytes)"
else fail "the flood came as ${frames:-no} frames for ${bytes:-no} bytes, wanted >= 2000 frames of < 512 bytes on average"; fi
check_contains "the flood ended when cancelled (SIGTERM or SIGKILL)" "flood ended with 1" "$out"

ml run --image "$ML_DEFAULT_IMAGE" -- "$(printf 'no\033]0;owned\007such')" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "a missing command exits 127" 127 "$rc"
check_contains "the exec error names the command, escape made harmless" "no?]0;owned?such" "$(cat "$T_TMP/e")"
if grep -q "$(printf '\033')" "$T_TMP/e"; then fail "an ESC byte from the guest reached stderr: $(od -c "$T_TMP/e" | head -3)"; else ok "no ESC byte from the guest reaches stderr"; fi
check_no_qemu_left "no VM left"
done_testing
