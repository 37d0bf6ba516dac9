#!/bin/bash
# run_log_budget: vm.log has one byte budget for everything written to it (console, command
# output, our own lines): a guest flooding its command output or its console stops at the
# budget, says so once in the file, and the sandbox keeps working.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE
budget=$((1 << 20))

# 4 MB of command output and 4 MB on the console, then a marker the user must still see.
script='head -c 4000000 /dev/zero | tr "\0" o; head -c 4000000 /dev/zero | tr "\0" c >/dev/console; echo; echo still-alive'
ML_ENV="MATCHLOCK_LOG_BUDGET_MB=1" ml_bg run --image $IMG --rm=false -- sh -c "$script" >"$T_TMP/out" 2>"$T_TMP/err"
pid=$ML_PID
for _ in $(seq 1 240); do grep -q still-alive "$T_TMP/out" && break; sleep 0.25; done
check_contains "the command's own output is complete on stdout" "still-alive" "$(tail -c 100 "$T_TMP/out")"
out_bytes=$(wc -c <"$T_TMP/out")
if [ "$out_bytes" -ge 4000000 ]; then ok "stdout got all 4 MB ($out_bytes bytes)"; else fail "stdout got $out_bytes bytes, wanted >= 4000000"; fi
log=$(ls "$ML_HOME"/.matchlock/vms/*/logs/vm.log)
size=$(wc -c <"$log")
if [ "$size" -le $((budget + 200)) ]; then ok "vm.log stopped at its budget ($size bytes)"; else fail "vm.log is $size bytes, budget $budget"; fi
check_eq "the file says once that it reached its budget" 1 "$(grep -c 'reached its size budget' "$log")"
kill -TERM $pid; wait $pid; rc=$?
check_eq "--rm=false run ends with SIGTERM: exit 0" 0 "$rc"
check_no_qemu_left "no VM left"
done_testing
