#!/bin/bash
# net_dns: DNS is no channel past the allow-list. In the fake internet of tests/lib/networld.sh
# (three dnsmasq resolvers that log every query), from the Debian test image (nettools.py's raw
# DNS probes over UDP and TCP):
#   with --allow-host web.test,*.example.test,alias.test
#     - a tunnel attempt (random labels under a name not in the list, TXT/A/NULL, to the
#       configured server and to the DNS alias, over UDP and over TCP/53) gets REFUSED at once,
#       and the resolvers' logs show no query for it: nothing left the host;
#     - an allowed name still resolves, over UDP and over TCP, but only for address types
#       (TXT of an allowed name is REFUSED too);
#     - a CNAME chain works: alias.test -> edge.cdn.test is fetched by name, and the target
#       may be asked for directly, while its neighbour is not;
#     - HTTP by name to an allowed host works, to another does not even resolve;
#     - the counters say it (dns_refused, TCP DNS flows).
#   without an allow-list (control): the same tunnel query reaches the resolver (its log shows
#   it), so the refusal above is the allow-list's doing.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
NT="python3 /tmp/nt.py"
TUN=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n').tunnel.evil.test
qlog() { cat "$W_DIR"/dns-*.log 2>/dev/null | grep -c "query\[[A-Z]*\] [^ ]*$1" || true; }

out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image "$DEB_IMG" --allow-host web.test,'*.example.test',alias.test -- sh -c "$GUEST_LIB
echo $(guest_tool) | base64 -d >/tmp/nt.py
T tun_txt 10 $NT dns 8.8.8.8 a1.$TUN TXT
T tun_a 10 $NT dns 8.8.8.8 a2.$TUN A
T tun_null 10 $NT dns 8.8.4.4 a3.$TUN NULL
T tun_alias 10 $NT dns 10.0.2.3 a4.$TUN TXT
T tun_tcp 10 $NT dnstcp 8.8.8.8 a5.$TUN TXT
T tun_tcp_alias 10 $NT dnstcp 10.0.2.3 a6.$TUN A
T web_a 10 $NT dns 8.8.8.8 web.test A
T web_txt 10 $NT dns 8.8.8.8 web.test TXT
T web_tcp 10 $NT dnstcp 8.8.8.8 web.test A
T api_tcp_alias 10 $NT dnstcp 10.0.2.3 api.example.test A
T apex 10 $NT dns 8.8.8.8 example.test A
T alias 10 $NT dns 8.8.8.8 alias.test A
T edge 10 $NT dns 8.8.8.8 edge.cdn.test A
T edge_other 10 $NT dns 8.8.8.8 other.cdn.test A
T curl_alias 20 curl -sS --max-time 15 http://alias.test/
T curl_web 20 curl -sS --max-time 15 http://web.test/
T curl_other 20 curl -sS --max-time 15 http://other.test/" 2>"$T_TMP/e1"); rc=$?
check_eq "allow-list run: exit 0" 0 "$rc"
for p in tun_txt tun_a tun_null tun_alias tun_tcp tun_tcp_alias; do
	check_g_ok "tunnel attempt ($p) gets REFUSED" "$out" "$p" "rcode=5 an=0"
done
check_eq "the resolvers were never asked for the tunnel name" 0 "$(qlog "$TUN")"
check_g_ok "an allowed name resolves over UDP" "$out" web_a "rcode=0 an=1 addrs=198.51.100.10"
check_g_ok "TXT of an allowed name is REFUSED (address types only)" "$out" web_txt "rcode=5"
check_g_ok "an allowed name resolves over TCP/53" "$out" web_tcp "rcode=0 an=1 addrs=198.51.100.10"
check_g_ok "a glob-allowed name resolves over TCP to the DNS alias" "$out" api_tcp_alias "rcode=0 an=1 addrs=198.51.100.30"
check_g_ok "the apex of *.example.test is REFUSED" "$out" apex "rcode=5"
check_g_ok "alias.test resolves through its CNAME" "$out" alias "addrs=198.51.100.10"
check_g_ok "the CNAME target may be asked for directly" "$out" edge "rcode=0 an=1 addrs=198.51.100.10"
check_g_ok "its neighbour may not" "$out" edge_other "rcode=5"
check_g_ok "HTTP by name through the CNAME chain" "$out" curl_alias "hello from web"
check_g_ok "HTTP to an allowed name" "$out" curl_web "hello from web"
check_g_denied "HTTP to a name not in the list does not even resolve" "$out" curl_other 5
check_ge "the resolvers were asked for web.test" 2 "$(qlog web.test)"
check_ge "stats: slirpnet answered REFUSED over UDP (dns_refused)" 6 "$(grep -o 'slirpnet .*' "$T_TMP/e1" | grep -o ' dns_refused=[0-9]*' | cut -d= -f2)"
check_ge "stats: mitm refused questions, UDP and TCP (dns_refused)" 8 "$(net_stat "$T_TMP/e1" dns_refused)"
check_ge "stats: TCP DNS flows served message by message" 3 "$(net_stat "$T_TMP/e1" dns_tcp_flows)"
check_ge "stats: TCP DNS queries forwarded (web.test, api.example.test)" 2 "$(net_stat "$T_TMP/e1" dns_tcp_queries)"

# --- control: no allow-list, the same kind of query goes out (NXDOMAIN from the resolver)
out=$(mlw run --image "$DEB_IMG" -- sh -c "$GUEST_LIB
echo $(guest_tool) | base64 -d >/tmp/nt.py
T tun_txt 10 $NT dns 8.8.8.8 b1.$TUN TXT
T tun_tcp 10 $NT dnstcp 8.8.8.8 b2.$TUN TXT" 2>"$T_TMP/e2"); rc=$?
check_eq "control run: exit 0" 0 "$rc"
check_g_ok "without a list the query is answered by the resolver (NXDOMAIN)" "$out" tun_txt "rcode=3"
check_g_ok "... over TCP too" "$out" tun_tcp "rcode=3"
check_eq "and the resolver's log shows both" 2 "$(qlog "$TUN")"
check_no_qemu_left "no VM left"
done_testing
