#!/bin/bash
# net_bulk: real traffic through the guest network, from the Debian test image (python3, curl,
# iperf3) in the fake internet of tests/lib/networld.sh, all in one VM: DNS through python
# (raw A/AAAA queries, the 10.0.2.3 alias, NXDOMAIN, getaddrinfo), 32 MiB down and 32 MiB up
# with sha256 checks on both ends, a 4 MiB echo with a half-close, 200 concurrent echo
# connections each verified, iperf3 both ways for 3 s, and the byte and flow counters of the
# supervisor's net: statistics agreeing with that.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
NT="python3 /tmp/nt.py"

s=$(date +%s)
out=$(ML_ENV=MATCHLOCK_LOG=info ML_TIMEOUT=200 mlw run --image "$DEB_IMG" -- sh -c "$GUEST_LIB
echo $(guest_tool) | base64 -d >/tmp/nt.py
T dns_a 10 $NT dns 8.8.8.8 web.test A
T dns_aaaa 10 $NT dns 8.8.8.8 web.test AAAA
T dns_alias 10 $NT dns 10.0.2.3 echo.test A
T dns_nx 10 $NT dns 8.8.8.8 nosuch.test A
T gai 10 $NT gai web.test
T gai_nx 10 $NT gai nosuch.test
T down 150 sh -c \"curl -sS --max-time 140 -o /tmp/big http://web.test/big.bin && sha256sum /tmp/big\"
T up 150 sh -c \"head -c 33554432 /dev/urandom >/tmp/up && sha256sum /tmp/up && curl -sS --max-time 140 -T /tmp/up http://web.test/upload\"
T halfclose 90 $NT halfclose echo.test 7 4194304
T many 150 $NT many echo.test 7 200 4096
T iperf_up 40 sh -c \"iperf3 -c 198.51.100.20 -t 3 -f m | grep -E sender\|receiver\"
T iperf_down 40 sh -c \"iperf3 -c 198.51.100.20 -t 3 -R -f m | grep -E sender\|receiver\"
T after 20 curl -sS --max-time 15 http://web.test/" 2>"$T_TMP/e1"); rc=$?
echo "# bulk run took $(( $(date +%s) - s ))s"
check_eq "bulk run: exit 0" 0 "$rc"
check_g_ok "python DNS: A web.test" "$out" dns_a "rcode=0 an=1 addrs=198.51.100.10"
check_g_ok "python DNS: AAAA web.test is empty NOERROR" "$out" dns_aaaa "rcode=0 an=0 addrs=|"
check_g_ok "python DNS: the 10.0.2.3 alias answers" "$out" dns_alias "rcode=0 an=1 addrs=198.51.100.20"
check_g_ok "python DNS: NXDOMAIN passed through" "$out" dns_nx "rcode=3 an=0"
check_g_ok "getaddrinfo web.test: IPv4 only" "$out" gai "['198.51.100.10']"
check_g_denied "getaddrinfo nosuch.test fails" "$out" gai_nx 5 "gai-error"
check_g_ok "32 MiB download: sha256 right" "$out" down "$W_BIG_SHA  /tmp/big"
l=$(g_line "$out" up)
guest_sum=$(printf '%s' "$l" | awk '{print $3}')
case "$l" in
"OK "*"sha256 $guest_sum 33554432"*) ok "32 MiB upload: the server's sha256 is the guest's (${guest_sum:0:12}...)" ;;
*) fail "32 MiB upload: [$l]" ;;
esac
check_g_ok "4 MiB echo with a half-close" "$out" halfclose "halfclose-ok 4194304"
check_g_ok "200 concurrent echo connections, each verified" "$out" many "many-ok 200"
check_g_ok "iperf3 guest -> world" "$out" iperf_up "receiver"
check_g_ok "iperf3 world -> guest (-R)" "$out" iperf_down "receiver"
echo "# iperf3 up:   $(g_line "$out" iperf_up | grep -o '[0-9.]* Mbits/sec *receiver')"
echo "# iperf3 down: $(g_line "$out" iperf_down | grep -o '[0-9.]* Mbits/sec *receiver')"
check_g_ok "a plain request still works afterwards" "$out" after "hello from web"
check_contains "the server logged the upload" "PUT /upload" "$(cat "$W_DIR/http-web.log")"
check_ge "stats: mitm bytes_up >= 32 MiB" $((32 << 20)) "$(net_stat "$T_TMP/e1" bytes_up)"
check_ge "stats: mitm bytes_down >= 32 MiB" $((32 << 20)) "$(net_stat "$T_TMP/e1" bytes_down)"
check_ge "stats: mitm flows_total >= 200" 200 "$(net_stat "$T_TMP/e1" flows_total)"
check_ge "stats: slirpnet flows_opened >= 200" 200 "$(net_stat "$T_TMP/e1" flows_opened)"
check_eq "stats: no mitm connect failed" 0 "$(net_stat "$T_TMP/e1" connect_failed)"
grep '^.*net: ' "$T_TMP/e1" | sed 's/^/# /'
check_no_qemu_left "no VM left"
done_testing
