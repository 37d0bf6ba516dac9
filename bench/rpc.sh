#!/bin/bash
# bench/rpc.sh - issue 10's figures for `make bench`, sourced by bench/run.sh (uses its ML, W,
# row, ratio) or run alone (then it defines them). The client side is bench/rpcbench.py:
#  1. exec round trip of `true` through the JSON-RPC server: by the real Python SDK
#     (client.exec("true")) and by our stdlib wire client, against the library's own exec path
#     (tests/tools/mlvm, what `run` uses) on the same kind of VM, one sample of each path per
#     round in turning order (same load for all); the guest's own fork+exec of /bin/true and
#     the server's answer to `status` (no guest) beside them. Goal: SDK <= 1.2x internal.
#  2. create to first exec through the SDK against `run -- true`, alternating. Goal: <= 1.1x.
# The SDK comes from $MATCHLOCK_PY_SDK (a folder holding the `matchlock` package); without it
# the SDK figures say they were skipped. Knobs: BENCH_RTT (round trips, default 500, spread over
# BENCH_RPC_ROUNDS fresh sets of VMs, default 3), BENCH_RPC_BOOTS (create samples, default 5).
set -u
declare -F row >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RN=${BENCH_RTT:-500}
RB=${BENCH_RPC_BOOTS:-5}
rpc_run() { PYTHONPATH=${MATCHLOCK_PY_SDK:-} MLVM_LIKE_RUN=1 MATCHLOCK_DATA_DIR=$REPO/build/lib/matchlock timeout 1800 python3 "$REPO/bench/rpcbench.py" "$ML" "$REPO/build/tests/tools/mlvm" "$@"; }
rpc_run rtt "$RN" >"$W/rpc-rtt" 2>&1 || cat "$W/rpc-rtt"
rpc_f() { awk -v k="$1" -v f="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == f) print a[2] } }' "$W/rpc-rtt"; }
i50=$(rpc_f internal p50_us); i99=$(rpc_f internal p99_us); s50=$(rpc_f internal-sh p50_us); s99=$(rpc_f internal-sh p99_us)
w50=$(rpc_f wire p50_us); w99=$(rpc_f wire p99_us); st50=$(rpc_f wire-status p50_us); gs=$(rpc_f guest-spawn avg_us)
if grep -q '^sdk skipped' "$W/rpc-rtt"; then
	echo "rpc: SDK figures skipped: MATCHLOCK_PY_SDK is not set"
else
	p50=$(rpc_f sdk p50_us); p99=$(rpc_f sdk p99_us)
	row "exec true RTT p50, Python SDK (us)" "$p50" "$s50" "library exec of sh -c true" "$(ratio "$p50" "$s50")" "<= 1.2"
	row "exec true RTT p99, Python SDK (us)" "$p99" "$s99" "library exec of sh -c true" "$(ratio "$p99" "$s99")" "-"
	row "exec true RTT p50, Python SDK (us)" "$p50" "$i50" "library exec of true (run's argv)" "$(ratio "$p50" "$i50")" "-"
	row "exec true RTT p50, Python SDK (us)" "$p50" "$gs" "guest fork+exec of /bin/true" "$(ratio "$p50" "$gs")" "-"
fi
row "exec true RTT p50, wire client (us)" "$w50" "$s50" "library exec of sh -c true" "$(ratio "$w50" "$s50")" "<= 1.2"
row "exec true RTT p99, wire client (us)" "$w99" "$s99" "library exec of sh -c true" "$(ratio "$w99" "$s99")" "-"
row "rpc status RTT p50, wire (us)" "$st50" "$s50" "no guest: the server's own path" "$(ratio "$st50" "$s50")" "-"
grep -- '-rounds' "$W/rpc-rtt" | sed 's/^/rpc: p50 ratio per set of VMs, /' 
row "library exec RTT p50/p99 (us)" "$i50/$i99" "$s50/$s99" "true vs sh -c true" "$(ratio "$i50" "$s50")" "-"
rpc_run create "$RB" >"$W/rpc-create" 2>&1 || cat "$W/rpc-create"
if grep -q '^create skipped' "$W/rpc-create"; then
	echo "rpc: create figure skipped: MATCHLOCK_PY_SDK is not set"
else
	c_run=$(sed -n 's/.*run_s=\([0-9.]*\).*/\1/p' "$W/rpc-create")
	c_sdk=$(sed -n 's/.*sdk_first_exec_s=\([0-9.]*\).*/\1/p' "$W/rpc-create")
	c_all=$(sed -n 's/.*sdk_with_close_s=\([0-9.]*\).*/\1/p' "$W/rpc-create")
	row "create to first exec, SDK (s)" "$c_sdk" "$c_run" "run -- true, spawn to exit" "$(ratio "$c_sdk" "$c_run")" "<= 1.1"
	row "the same with close (s)" "$c_all" "$c_run" "run -- true, spawn to exit" "$(ratio "$c_all" "$c_run")" "-"
fi
