#!/bin/bash
# vm_concurrent: one VM runs 50 execs at once, each with its own output and exit status; and
# cancelling an exec kills its whole process group (SIGTERM, then SIGKILL).
. "$(dirname "$0")/../lib/harness.sh"
TOOL=$REPO/build/tests/tools/mlvm
cp "$TOOL" "$T_TMP/mlvm" && chmod 0755 "$T_TMP/mlvm"
export ML_ENV="MATCHLOCK_DATA_DIR=$ML_PREFIX/lib/matchlock"

out=$(as_user "$T_TMP/mlvm" concurrent 50 2>&1); rc=$?
check_eq "50 concurrent execs all right" 0 "$rc"
check_contains "50 concurrent execs: summary" "concurrent: 50 execs, 0 wrong" "$out"

out=$(as_user "$T_TMP/mlvm" cancel 2>&1); rc=$?
check_eq "cancel kills the process group" 0 "$rc"
check_contains "cancel: no sleep survives" "sleeps left [0" "$out"
check_no_qemu_left "no VM left"
done_testing
