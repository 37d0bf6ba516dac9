#!/bin/bash
# run_basic: `run` boots a real VM from the embedded default image, keeps stdout and stderr
# apart, and exits with the guest command's status (0, 1, 7, 255, death by signal).
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

out=$(ml run --image $IMG -- echo hello 2>"$T_TMP/err"); rc=$?
check_eq "echo hello: exit 0" 0 "$rc"
check_eq "echo hello: stdout" hello "$out"

ml run --image $IMG -- sh -c 'echo to-out; echo to-err >&2' >"$T_TMP/o" 2>"$T_TMP/e"
check_eq "stdout kept apart" to-out "$(cat "$T_TMP/o")"
check_contains "stderr kept apart" to-err "$(cat "$T_TMP/e")"
check_not_contains "stderr has no stdout" to-out "$(cat "$T_TMP/e")"

for code in 1 7 255; do
	ml run --image $IMG -- sh -c "exit $code" >/dev/null 2>&1; rc=$?
	check_eq "exit $code propagates" "$code" "$rc"
done
ml run --image $IMG -- sh -c 'kill -KILL $$' >/dev/null 2>&1; rc=$?
check_eq "death by SIGKILL = 128+9" 137 "$rc"

ml run --image $IMG -- /no/such/binary >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "missing binary: exit 127" 127 "$rc"
check_contains "missing binary: says so" "No such file or directory" "$(cat "$T_TMP/e")"

# No command: the image CMD (/bin/sh) runs with an empty stdin and exits 0.
ml run --image $IMG </dev/null >/dev/null 2>&1; rc=$?
check_eq "image CMD with empty stdin exits 0" 0 "$rc"

out=$(ml run --image $IMG cat /etc/os-release)
check_contains "runs in the default image" "matchlock" "$out"

# MATCHLOCK_RUN_IMAGE stands in for --image.
out=$(ML_ENV="MATCHLOCK_RUN_IMAGE=$IMG" ml run -- echo via-env)
check_eq "MATCHLOCK_RUN_IMAGE" via-env "$out"

# --rm (default) leaves no VM state behind.
left=$(ls "$ML_HOME/.matchlock/vms" 2>/dev/null | wc -l)
check_eq "--rm removed every VM state dir" 0 "$left"
check_no_qemu_left "no VM outlives its run"
done_testing
