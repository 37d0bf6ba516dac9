#!/bin/bash
# net_policy: the egress policy, by destination address, in the fake internet of
# tests/lib/networld.sh. Every blocked destination holds a live server that records each
# connection, so "blocked" is proven by the policy (nothing arrived, the client was refused
# at once), never by a dead address. One VM per policy:
#   default         public hosts reachable; private ranges, 169.254.169.254, the other
#                   always-blocked ranges (100.64/10 and Alibaba's 100.100.100.200, Azure's
#                   168.63.129.16, 192.0.0/24, 198.18/15), the gateway, the host's own address
#                   and the virtual network's own addresses (DNS alias, flow slots) refused
#   names           --allow-host web.test (ports 80 and 443 only: not :8080), *.example.test
#                   (not the apex), echo.test:7, and names whose addresses are private or
#                   always blocked (still refused)
#   ports, globs    api*.example.test, web.test:80 (not :8080), --add-host names count as
#                   resolved names
#   literals        exact IPv4 literals lift the private block (10.99.0.10) and open the
#                   gateway (10.0.2.2:8080 -> the host's 127.0.0.1:8080), never 169.254.169.254
#                   nor the host's own address
#   *               everything public, still no private address and no gateway
#   new host address an address added to the host while the VM runs is refused from then on
#                   (the netlink watch re-reads the host's addresses), though a server there
#                   answers the host itself
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
IMG=$ML_DEFAULT_IMAGE

# --- default: no allow-list
out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image $IMG -- sh -c "$GUEST_LIB
T web 20 wget -q -O - http://web.test/
T other 20 wget -q -O - http://other.test/
T private_name 20 wget -q -O - http://private.test/
T private_ip 20 wget -q -O - http://10.99.0.10/
T meta_name 20 wget -q -O - http://meta.test/
T meta_ip 20 wget -q -O - http://169.254.169.254/
T gateway 20 wget -q -O - http://10.0.2.2:8080/
T dns_alias_tcp 20 wget -q -O - http://10.0.2.3/
T slot 20 wget -q -O - http://10.0.2.100/
T hostaddr 20 wget -q -O - http://$W_HOST_ADDR/
$(for r in $W_BLOCKED_RANGES; do echo "T ${r##*:} 20 wget -q -O - http://${r%%:*}/"; done)
T cgnat_name 20 wget -q -O - http://cgnat.test/
T web_again 20 wget -q -O - http://web.test/" 2>"$T_TMP/e1"); rc=$?
check_eq "default policy run: exit 0" 0 "$rc"
check_g_ok "default: web.test reachable" "$out" web "hello from web"
check_g_ok "default: other.test reachable (no allow-list = all public hosts)" "$out" other "hello from other"
check_g_denied "default: private.test (10.99.0.10) refused at once" "$out" private_name
check_g_denied "default: 10.99.0.10 refused at once" "$out" private_ip
check_g_denied "default: meta.test (169.254.169.254) refused at once" "$out" meta_name
check_g_denied "default: 169.254.169.254 refused at once" "$out" meta_ip
check_g_denied "default: the gateway 10.0.2.2:8080 refused at once" "$out" gateway
check_g_denied "default: TCP to the DNS alias 10.0.2.3 refused" "$out" dns_alias_tcp
# nothing answers ARP for a slot address: the guest kernel gives up after its 3 ARP probes
check_g_denied "default: TCP to a flow slot 10.0.2.100 unreachable" "$out" slot 8
check_g_denied "default: the host's own address $W_HOST_ADDR refused at once" "$out" hostaddr
for r in $W_BLOCKED_RANGES; do
	check_g_denied "default: always-blocked ${r%%:*} (${r##*:}) refused at once" "$out" "${r##*:}"
	check_eq "default: the ${r##*:} server at ${r%%:*} saw no connection" 0 "$(rec_count "${r##*:}")"
done
check_g_denied "default: cgnat.test (100.64.1.1) refused at once" "$out" cgnat_name
check_g_ok "default: web.test still reachable after the refusals" "$out" web_again "hello from web"
check_eq "default: the private server saw no connection" 0 "$(rec_count private)"
check_eq "default: the metadata server saw no connection" 0 "$(rec_count meta)"
check_eq "default: the world's loopback server saw no connection" 0 "$(rec_count loopback)"
check_eq "default: the host-address server saw no connection" 0 "$(rec_count hostaddr)"
check_ge "default: stats denied_private" 2 "$(net_stat "$T_TMP/e1" denied_private)"
check_ge "default: stats denied_gateway" 1 "$(net_stat "$T_TMP/e1" denied_gateway)"
check_ge "default: stats: blocked destinations counted (tcp_blocked + denied_blocked)" 10 \
	$(( $(net_stat "$T_TMP/e1" tcp_blocked) + $(net_stat "$T_TMP/e1" denied_blocked) ))
# mitm's own count: the host's address, the five new ranges and cgnat.test (slirpnet's built-in
# blocks see only loopback, link-local, multicast and its own network)
check_ge "default: stats: mitm denied_blocked counts the new ranges" 7 "$(net_stat "$T_TMP/e1" denied_blocked)"

# --- names
other=$(grep -c . "$W_DIR/http-other.log")
w8080=$(rec_count web8080)
out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image $IMG --allow-host web.test --allow-host '*.example.test' \
	--allow-host echo.test:7 --allow-host private.test --allow-host meta.test --allow-host cgnat.test -- sh -c "$GUEST_LIB
T web 20 wget -q -O - http://web.test/
T web8080 20 wget -q -O - http://web.test:8080/
T api 20 wget -q -O - http://api.example.test/
T www 20 wget -q -O - http://www.example.test/
T apex 20 wget -q -O - http://example.test/
T other 20 wget -q -O - http://other.test/
T other_ip 20 wget -q -O - http://203.0.113.10/
T echo 20 sh -c \"echo hi-echo | nc echo.test 7\"
T private_name 20 wget -q -O - http://private.test/
T meta_name 20 wget -q -O - http://meta.test/
T cgnat_name 20 wget -q -O - http://cgnat.test/" 2>"$T_TMP/e2"); rc=$?
check_eq "allow-list run: exit 0" 0 "$rc"
check_g_ok "--allow-host web.test: web.test" "$out" web "hello from web"
check_g_denied "--allow-host web.test (no port): web.test:8080 refused (a name opens 80 and 443)" "$out" web8080
check_eq "--allow-host web.test (no port): the :8080 server saw nothing" "$w8080" "$(rec_count web8080)"
check_g_ok "--allow-host *.example.test: api.example.test" "$out" api "hello from api"
check_g_ok "--allow-host *.example.test: www.example.test" "$out" www "hello from api"
check_g_denied "--allow-host *.example.test: not the apex example.test" "$out" apex
check_g_denied "allow-list: other.test refused at once" "$out" other
check_g_denied "allow-list: an IP literal not in the list refused" "$out" other_ip
check_g_ok "--allow-host echo.test:7: echo" "$out" echo "hi-echo|"
check_g_denied "an allowed name with a private address is still refused" "$out" private_name
check_g_denied "an allowed name with the metadata address is still refused" "$out" meta_name
check_g_denied "an allowed name with a 100.64/10 address is still refused" "$out" cgnat_name
check_eq "the cgnat server saw no connection" 0 "$(rec_count cgnat)"
check_eq "allow-list: other.test's server saw nothing" "$other" "$(grep -c . "$W_DIR/http-other.log")"
check_eq "allow-list: example.test's server saw nothing" 0 "$(grep -c . "$W_DIR/http-apex.log")"
check_eq "allow-list: the private server saw no connection" 0 "$(rec_count private)"
check_eq "allow-list: the metadata server saw no connection" 0 "$(rec_count meta)"
# An allow-list turns interception on: TCP/80 is refused by the HTTP proxy, by the Host name
# and the address the host resolves (403 "Blocked by policy"; tests/e2e/net_intercept.sh), not
# at SYN time: the literal 203.0.113.10 and private.test (its private address). The metadata
# and 100.64/10 addresses are always blocked, at SYN time. other.test and example.test never
# get an address (their DNS questions are refused); web.test:8080 is not intercepted and is
# refused at connect.
check_ge "allow-list: stats requests_blocked (TCP/80 refused by the proxy)" 2 "$(net_stat "$T_TMP/e2" requests_blocked)"
check_ge "allow-list: stats denied_allowlist (web.test:8080)" 1 "$(net_stat "$T_TMP/e2" denied_allowlist)"
check_ge "allow-list: stats dns_refused (other.test, example.test)" 2 "$(net_stat "$T_TMP/e2" dns_refused)"

# --- ports, prefix globs, --add-host
w8080=$(rec_count web8080)
out=$(mlw run --image $IMG --allow-host 'api*.example.test' --allow-host web.test:80 --allow-host added.test \
	--add-host added.test:203.0.113.10 -- sh -c "$GUEST_LIB
T hosts 10 cat /etc/hosts
T api 20 wget -q -O - http://api.example.test/
T web 20 wget -q -O - http://web.test/
T web8080 20 wget -q -O - http://web.test:8080/
T added 20 wget -q -O - http://added.test/
T apex 20 wget -q -O - http://example.test/" 2>"$T_TMP/e3"); rc=$?
check_eq "ports/globs run: exit 0" 0 "$rc"
check_g_ok "--add-host line in /etc/hosts" "$out" hosts "203.0.113.10 added.test"
check_g_ok "--allow-host api*.example.test: api.example.test" "$out" api "hello from api"
check_g_ok "--allow-host web.test:80: port 80" "$out" web "hello from web"
check_g_denied "--allow-host web.test:80: port 8080 refused" "$out" web8080
check_eq "--allow-host web.test:80: the :8080 server saw nothing new" "$w8080" "$(rec_count web8080)"
check_g_ok "--allow-host added.test with --add-host added.test:IP" "$out" added "hello from other"
check_g_denied "--allow-host api*.example.test: example.test refused" "$out" apex

# --- IP literals: the private block and the gateway lifted for exactly those addresses
out=$(mlw run --image $IMG --allow-host 10.99.0.10 --allow-host 10.0.2.2 --allow-host 169.254.169.254 \
	--allow-host $W_HOST_ADDR -- sh -c "$GUEST_LIB
T private_ip 20 wget -q -O - http://10.99.0.10/
T gateway 20 wget -q -O - http://10.0.2.2:8080/
T meta_ip 20 wget -q -O - http://169.254.169.254/
T hostaddr 20 wget -q -O - http://$W_HOST_ADDR/
T web 20 wget -q -O - http://web.test/" 2>"$T_TMP/e4"); rc=$?
check_eq "IP-literal run: exit 0" 0 "$rc"
check_g_ok "--allow-host 10.99.0.10 reaches the private server" "$out" private_ip "recorder private"
check_eq "the private server saw exactly that connection" 1 "$(rec_count private)"
check_g_ok "--allow-host 10.0.2.2: 10.0.2.2:8080 is the world's 127.0.0.1:8080" "$out" gateway "recorder loopback"
check_eq "the loopback server saw exactly that connection" 1 "$(rec_count loopback)"
check_g_denied "--allow-host 169.254.169.254 does not lift the always-blocked address" "$out" meta_ip
check_eq "the metadata server still saw nothing" 0 "$(rec_count meta)"
check_g_denied "--allow-host $W_HOST_ADDR does not open the host's own address" "$out" hostaddr
check_eq "the host-address server still saw nothing" 0 "$(rec_count hostaddr)"
check_g_denied "IP-literal allow-list: web.test (not listed) refused" "$out" web

# --- *: all public names, still no private address and no gateway
out=$(mlw run --image $IMG --allow-host '*' -- sh -c "$GUEST_LIB
T web 20 wget -q -O - http://web.test/
T other 20 wget -q -O - http://other.test/
T private_name 20 wget -q -O - http://private.test/
T gateway 20 wget -q -O - http://10.0.2.2:8080/
T meta_ip 20 wget -q -O - http://169.254.169.254/" 2>"$T_TMP/e5"); rc=$?
check_eq "--allow-host * run: exit 0" 0 "$rc"
check_g_ok "--allow-host *: web.test" "$out" web "hello from web"
check_g_ok "--allow-host *: other.test" "$out" other "hello from other"
check_g_denied "--allow-host *: private.test still refused" "$out" private_name
check_g_denied "--allow-host *: the gateway still refused" "$out" gateway
check_g_denied "--allow-host *: 169.254.169.254 still refused" "$out" meta_ip
check_eq "--allow-host *: the private server saw nothing new" 1 "$(rec_count private)"
check_eq "--allow-host *: the loopback server saw nothing new" 1 "$(rec_count loopback)"
check_eq "--allow-host *: the metadata server saw nothing" 0 "$(rec_count meta)"
check_eq "--allow-host *: the host-address server saw nothing" 0 "$(rec_count hostaddr)"
# --- an address the host gains while the VM runs: refused once it is the host's
NEWADDR=203.0.113.77
rm -f "$W_DIR/www/go.txt"
(
	wait_guest_running || exit 1
	in_world ip addr add "$NEWADDR/32" dev lo
	in_world timeout 120 /usr/bin/python3 "$REPO/tests/lib/nettools.py" serve "$W_DIR" 120 \
		record:"$NEWADDR":80:newaddr >"$W_DIR/newaddr.out" 2>&1 &
	echo $! >"$T_TMP/newaddr.pid"
	for _ in $(seq 1 50); do grep -q ready "$W_DIR/newaddr.out" 2>/dev/null && break; sleep 0.1; done
	# the host itself reaches it: the server is live
	as_user_world wget -q -T 5 -O "$T_TMP/host-probe" "http://$NEWADDR/"
	echo go >"$W_DIR/www/go.txt" && chmod 0644 "$W_DIR/www/go.txt"
) &
trig=$!
out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image $IMG -- sh -c "$GUEST_LIB
T wait 90 sh -c \"until wget -q -O - http://web.test/go.txt; do sleep 0.5; done\"
T newaddr 20 wget -q -O - http://$NEWADDR/
T web 20 wget -q -O - http://web.test/" 2>"$T_TMP/e6"); rc=$?
wait "$trig"
[ -f "$T_TMP/newaddr.pid" ] && W_PIDS="$W_PIDS $(cat "$T_TMP/newaddr.pid")"
check_eq "new-address run: exit 0" 0 "$rc"
check_contains "the new address's server answers the host" "recorder newaddr" "$(cat "$T_TMP/host-probe" 2>/dev/null)"
check_g_ok "the guest waited for the address to be added" "$out" wait "go"
check_g_denied "the host's new address $NEWADDR refused at once" "$out" newaddr
check_eq "its server saw only the host's own probe" 1 "$(rec_count newaddr)"
check_g_ok "web.test still reachable" "$out" web "hello from web"
check_ge "stats: the host's addresses were read again (host_addr_reloads)" 1 "$(net_stat "$T_TMP/e6" host_addr_reloads)"
in_world ip addr del "$NEWADDR/32" dev lo
check_no_qemu_left "no VM left"
done_testing
