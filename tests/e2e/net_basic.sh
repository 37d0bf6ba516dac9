#!/bin/bash
# net_basic: guest networking as a user sees it, in the fake internet of tests/lib/networld.sh
# (matchlock runs inside it as the test user): eth0 10.0.2.15/24 via 10.0.2.2, DNS answered by
# the host and forwarded to the server the guest asked (busybox nslookup: A, AAAA empty,
# NXDOMAIN, each configured server, the 10.0.2.3 alias; an unconfigured server is never
# asked), wget by name and by address, a 1 MiB download intact, echo with half-close,
# --dns-servers 1.1.1.1, --no-network, --mtu, and the supervisor's net: statistics lines.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
IMG=$ML_DEFAULT_IMAGE

out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image $IMG -- sh -c "$GUEST_LIB
T addr 10 ip addr show eth0
T route 10 ip route
T mtu 10 cat /sys/class/net/eth0/mtu
T resolv 10 cat /etc/resolv.conf
T ns_a 20 nslookup web.test
T ns_aaaa 20 nslookup -type=aaaa web.test
T ns_nx 20 nslookup nosuch.test
T ns_first 20 nslookup dnsserver.test
T ns_844 20 nslookup dnsserver.test 8.8.4.4
T ns_alias 20 nslookup dnsserver.test 10.0.2.3
T ns_other 6 nslookup dnsserver.test 1.1.1.1
T wget_name 20 wget -q -O - http://web.test/
T wget_ip 20 wget -q -O - http://198.51.100.10/
T wget_api 20 wget -q -O - http://api.example.test/
T wget_1m 60 sh -c \"wget -q -O - http://web.test/1m.bin | sha256sum\"
T wget_404 20 wget -q -O - http://web.test/nope
T echo 20 sh -c \"echo ping-echo | nc echo.test 7\"
T after_dns 20 nslookup echo.test" 2>"$T_TMP/e1"); rc=$?
check_eq "default network run: exit 0" 0 "$rc"
check_g_ok "eth0 is 10.0.2.15/24" "$out" addr "inet 10.0.2.15/24"
check_g_ok "default route via 10.0.2.2" "$out" route "default via 10.0.2.2"
check_g_ok "eth0 mtu 1500 by default" "$out" mtu "1500|"
check_g_ok "resolv.conf: 8.8.8.8 first" "$out" resolv "nameserver 8.8.8.8|nameserver 8.8.4.4"
check_g_ok "nslookup web.test (A)" "$out" ns_a "Address: 198.51.100.10"
check_g_ok "nslookup -type=aaaa web.test succeeds" "$out" ns_aaaa
l=$(g_line "$out" ns_aaaa)
check_not_contains "AAAA: no address in the answer" "Address: " "$l"
check_not_contains "AAAA: not an error" "can't" "$l"
check_g_denied "nslookup nosuch.test: NXDOMAIN passed through" "$out" ns_nx 10 NXDOMAIN
check_g_ok "the first configured server answers by default (8.8.8.8)" "$out" ns_first "Address: 192.0.2.8"
check_g_ok "a query to 8.8.4.4 is answered by 8.8.4.4" "$out" ns_844 "Address: 192.0.2.4"
check_g_ok "a query to the 10.0.2.3 alias goes to the first server" "$out" ns_alias "Address: 192.0.2.8"
check_g_denied "a query to an unconfigured server (1.1.1.1) gets no answer" "$out" ns_other 7
check_eq "1.1.1.1 was never asked" 0 "$(dns_log_count 1.1.1.1 dnsserver.test)"
check_eq "8.8.4.4 was asked exactly once for dnsserver.test" 1 "$(dns_log_count 8.8.4.4 dnsserver.test)"
check_g_ok "wget http://web.test/" "$out" wget_name "hello from web"
check_g_ok "wget http://198.51.100.10/" "$out" wget_ip "hello from web"
check_g_ok "wget http://api.example.test/" "$out" wget_api "hello from api"
check_g_ok "1 MiB download intact" "$out" wget_1m "$W_1M_SHA"
check_g_denied "an HTTP 404 is a failure for wget" "$out" wget_404 10 "404"
check_g_ok "TCP echo with half-close (nc)" "$out" echo "ping-echo|"
check_g_ok "DNS still works at the end" "$out" after_dns "Address: 198.51.100.20"
check_ge "the web server saw the guest's requests" 4 "$(grep -c 'GET' "$W_DIR/http-web.log")"
e1=$(cat "$T_TMP/e1")
check_contains "stats: slirpnet line" "net: slirpnet frames_in=" "$e1"
check_contains "stats: mitm line" "net: mitm flows_total=" "$e1"
check_ge "stats: flows_opened counts the TCP flows" 6 "$(net_stat "$T_TMP/e1" flows_opened)"
check_ge "stats: mitm flows_total" 6 "$(net_stat "$T_TMP/e1" flows_total)"
check_ge "stats: the DNS query to 1.1.1.1 was dropped as udp_policy" 1 "$(net_stat "$T_TMP/e1" udp_policy)"
check_ge "stats: bytes_down covers the 1 MiB download" $((1 << 20)) "$(net_stat "$T_TMP/e1" bytes_down)"

# --dns-servers replaces the resolvers: 1.1.1.1 answers, 8.8.8.8 is not used (nor reachable)
before=$(dns_log_count 8.8.8.8 dnsserver.test)
out=$(mlw run --image $IMG --dns-servers 1.1.1.1 -- sh -c "$GUEST_LIB
T resolv 10 cat /etc/resolv.conf
T ns 20 nslookup dnsserver.test
T ns_888 6 nslookup dnsserver.test 8.8.8.8
T wget 20 wget -q -O - http://web.test/" 2>"$T_TMP/e2"); rc=$?
check_eq "--dns-servers 1.1.1.1 run: exit 0" 0 "$rc"
check_g_ok "--dns-servers 1.1.1.1: resolv.conf" "$out" resolv "nameserver 1.1.1.1|"
check_not_contains "--dns-servers 1.1.1.1: no 8.8.8.8 in resolv.conf" "8.8.8.8" "$(g_line "$out" resolv)"
check_g_ok "--dns-servers 1.1.1.1: answered by 1.1.1.1" "$out" ns "Address: 192.0.2.1"
check_g_denied "--dns-servers 1.1.1.1: 8.8.8.8 is not a resolver any more" "$out" ns_888 7
check_eq "--dns-servers 1.1.1.1: 8.8.8.8 was not asked" "$before" "$(dns_log_count 8.8.8.8 dnsserver.test)"
check_g_ok "--dns-servers 1.1.1.1: wget by name" "$out" wget "hello from web"

before=$(grep -c . "$W_DIR/http-web.log")
out=$(mlw run --image $IMG --no-network -- sh -c "$GUEST_LIB
T ls 10 ls /sys/class/net
T wget 10 wget -q -O - http://198.51.100.10/
T ns 10 nslookup web.test" 2>"$T_TMP/e3"); rc=$?
check_eq "--no-network run: exit 0" 0 "$rc"
check_g_ok "--no-network: lo" "$out" ls "lo|"
check_not_contains "--no-network: no eth0" "eth0" "$(g_line "$out" ls)"
check_g_denied "--no-network: wget fails" "$out" wget 10
check_g_denied "--no-network: no DNS" "$out" ns 11
check_eq "--no-network: the web server saw nothing" "$before" "$(grep -c . "$W_DIR/http-web.log")"

out=$(mlw run --image $IMG --mtu 1280 -- sh -c "$GUEST_LIB
T mtu 10 cat /sys/class/net/eth0/mtu
T wget_1m 60 sh -c \"wget -q -O - http://web.test/1m.bin | sha256sum\"
T echo 20 sh -c \"head -c 200000 /dev/zero | nc echo.test 7 | wc -c\"" 2>"$T_TMP/e4"); rc=$?
check_eq "--mtu 1280 run: exit 0" 0 "$rc"
check_g_ok "--mtu 1280: eth0 mtu" "$out" mtu "1280|"
check_g_ok "--mtu 1280: 1 MiB download intact" "$out" wget_1m "$W_1M_SHA"
check_g_ok "--mtu 1280: 200 kB echoed" "$out" echo "200000"
check_no_qemu_left "no VM left"
done_testing
