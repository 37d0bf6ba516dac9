#!/bin/bash
# run_streams: 1 MiB on stdout and on stderr arrive intact and apart; 1 MiB of stdin with -i
# arrives intact; output is also in the VM log while the VM lives.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

gen='i=0; while [ $i -lt 16384 ]; do echo "$1 line $i 0123456789abcdefghijklmnopqrstuvwxyz_-"; i=$((i+1)); done | head -c 1048576'
ml run --image $IMG -- sh -c "set -- OUT; $gen; set -- ERR; $gen >&2" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "1 MiB each: exit 0" 0 "$rc"
sh -c "set -- OUT; $gen" >"$T_TMP/o.want"
sh -c "set -- ERR; $gen" >"$T_TMP/e.want"
check_eq "1 MiB stdout intact" "$(sha256sum <"$T_TMP/o.want")" "$(sha256sum <"$T_TMP/o")"
check_eq "1 MiB stderr intact" "$(sha256sum <"$T_TMP/e.want")" "$(sha256sum <"$T_TMP/e")"

head -c 1048576 /dev/urandom >"$T_TMP/in"
chmod 0644 "$T_TMP/in"
ml run --image $IMG -i -- cat <"$T_TMP/in" >"$T_TMP/echoed"; rc=$?
check_eq "-i cat: exit 0" 0 "$rc"
check_eq "-i: 1 MiB stdin round trip intact" "$(sha256sum <"$T_TMP/in")" "$(sha256sum <"$T_TMP/echoed")"
out=$(printf 'a\nb\nc\n' | ml run --image $IMG -i -- wc -l)
check_eq "-i: EOF reaches the guest" 3 "$(echo $out)"
out=$(printf 'ignored\n' | ml run --image $IMG -- sh -c 'cat; echo after')
check_eq "without -i the guest stdin is empty" after "$out"

# A slow reader must not lose data: the pipe to `sleep; cat` fills, then drains.
ml run --image $IMG -- sh -c "set -- OUT; $gen" | (sleep 3; cat) >"$T_TMP/slow"
check_eq "slow reader gets every byte" "$(sha256sum <"$T_TMP/o.want")" "$(sha256sum <"$T_TMP/slow")"
# A reader that goes away early: run still ends, with the guest's status.
ml run --image $IMG -- sh -c "set -- OUT; $gen; exit 3" | head -c 10 >/dev/null; rc=${PIPESTATUS[0]}
check_eq "closed stdout: run still returns the guest status" 3 "$rc"
check_no_qemu_left "no VM left"
done_testing
