#!/bin/bash
# net_scale: 500 guest TCP flows open at once through one supervisor (Debian test image,
# python3, in the fake internet of tests/lib/networld.sh). While they are all open: each one
# echoes its own line intact, the supervisor still answers DNS and opens a new connection
# promptly, and its memory per flow is measured (RSS of the matchlock process before and
# while the flows are open) and checked against the bound the counters report.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
N=500

ML_ENV=MATCHLOCK_LOG=info mlw_bg run --image "$DEB_IMG" -- sh -c "echo $(guest_tool) | base64 -d >/tmp/nt.py && python3 /tmp/nt.py scale 198.51.100.20 7 $N web.test" \
	>"$T_TMP/out" 2>"$T_TMP/err"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$ML_PID/status" 2>/dev/null; }
wait_for() { for _ in $(seq 1 "$2"); do grep -q "$1" "$T_TMP/out" && return 0; sleep 0.5; done; return 1; }
if wait_for START 240; then rss0=$(rss); else rss0=; fi
if wait_for HOLD 240; then rss1=$(rss); else rss1=; fi
for _ in $(seq 1 120); do kill -0 "$ML_PID" 2>/dev/null || break; sleep 0.5; done
kill "$ML_PID" 2>/dev/null
wait "$ML_PID"; rc=$?
out=$(cat "$T_TMP/out")
check_eq "500-flow run: exit 0" 0 "$rc"
check_contains "$N flows open at once" "opened $N" "$out"
check_contains "every flow echoed its own line" "echoed $N" "$out"
check_contains "a new connection while $N are open works" "True" "$(printf '%s\n' "$out" | grep http_ms)"
dns_med=$(printf '%s\n' "$out" | awk '/^dns_ms/ {print int($3)}')
dns_max=$(printf '%s\n' "$out" | awk '/^dns_ms/ {print int($5)}')
http_ms=$(printf '%s\n' "$out" | awk '/^http_ms/ {print int($2)}')
echo "# with $N flows open: DNS median ${dns_med}ms max ${dns_max}ms, new HTTP request ${http_ms}ms"
# Responsive means an answer in human time under TCG, not a benchmark: bounds far above the
# idle figures (DNS ~5 ms, HTTP ~20 ms) and far below a stall.
if [ -n "$dns_max" ] && [ "$dns_max" -lt 2000 ]; then ok "DNS answered while $N flows are open (max ${dns_max}ms)"; else fail "DNS while $N flows open: [$dns_max]"; fi
if [ -n "$http_ms" ] && [ "$http_ms" -lt 3000 ]; then ok "new request served while $N flows are open (${http_ms}ms)"; else fail "new request while $N flows open: [$http_ms]"; fi
check_contains "the counters report memory per flow" "bytes_per_flow_idle=" "$(cat "$T_TMP/err")"
idle=$(net_stat "$T_TMP/err" bytes_per_flow_idle); per=$(net_stat "$T_TMP/err" bytes_per_flow)
if [ -n "$rss0" ] && [ -n "$rss1" ]; then
	per_flow=$(( (rss1 - rss0) * 1024 / N ))
	echo "# supervisor RSS ${rss0} KiB before, ${rss1} KiB with $N flows: $per_flow bytes per flow (reported: mitm $idle + slirpnet $per, plus libslirp's socket state)"
	# libslirp's per-socket state is not counted by the two modules; an idle flow measured
	# ~9 KiB (rpc/net.c keeps libslirp's 128 KiB rings lazily mapped). 32 KiB is the bound:
	# without that, it was 258 KiB.
	if [ "$per_flow" -lt 32768 ]; then ok "memory per idle flow bounded ($per_flow bytes < 32 KiB)"; else fail "memory per flow $per_flow bytes"; fi
else
	fail "RSS measured before and during ($rss0, $rss1)"
fi
check_ge "stats: $N flows opened" "$N" "$(net_stat "$T_TMP/err" flows_opened)"
check_eq "stats: no flow refused for a full table" 0 "$(net_stat "$T_TMP/err" flow_table_full)"
done_testing
