#!/bin/bash
# run_tty: `run -it` gives the guest a real PTY: echo, the terminal's size, resize on SIGWINCH,
# the exit status of the PTY process, and the user's terminal restored afterwards.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

cat >"$T_TMP/script" <<'S'
expect #
send echo typed-$((6*7))
expect typed-42
send stty size
expect 33 101
resize 40 120
sleep 1
send stty size
expect 40 120
send tty
expect /dev/pts/
send exit 5
S
chmod 0644 "$T_TMP/script"
out=$(as_user python3 "$REPO/tests/lib/pty_run.py" 33 101 "$T_TMP/script" -- "$ML_BIN" run --image $IMG -it sh 2>&1); rc=$?
check_eq "-it: exit status of the PTY process" 5 "$rc"
check_contains "-it: echo and shell output" "typed-42" "$out"
check_contains "-it: initial size from the terminal" "33 101" "$out"
check_contains "-it: resize reaches the guest" "40 120" "$out"
check_contains "-it: the guest has a real pty" "/dev/pts/" "$out"

# The terminal is restored: after run -it, `stty -g` reads the same as before.
cat >"$T_TMP/script2" <<S
send stty -g > $T_TMP/before; $ML_BIN run --image $IMG -it sh -c 'exit 0'; stty -g > $T_TMP/after; echo done-\$((1+1))
expect done-2
send exit
S
chmod 0644 "$T_TMP/script2"
as_user python3 "$REPO/tests/lib/pty_run.py" 24 80 "$T_TMP/script2" -- sh >/dev/null 2>&1
if [ -s "$T_TMP/before" ] && cmp -s "$T_TMP/before" "$T_TMP/after"; then ok "terminal restored after -it"; else fail "terminal settings differ after -it"; fi
check_no_qemu_left "no VM left"
done_testing
