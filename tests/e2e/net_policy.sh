#!/bin/bash
# net_policy: the egress policy, by destination address, in the fake internet of
# tests/lib/networld.sh. Every blocked destination holds a live server that records each
# connection, so "blocked" is proven by the policy (nothing arrived, the client was refused
# at once), never by a dead address. One VM per policy:
#   default         public hosts reachable; private ranges, 169.254.169.254, the gateway, the
#                   host's own address and the virtual network's own addresses (DNS alias,
#                   flow slots) refused
#   names           --allow-host web.test, *.example.test (not the apex), echo.test:7, and
#                   names whose addresses are private/always-blocked (still refused)
#   ports, globs    api.*, web.test:80 (not :8080), --add-host names count as resolved names
#   literals        exact IPv4 literals lift the private block (10.99.0.10) and open the
#                   gateway (10.0.2.2:8080 -> the host's 127.0.0.1:8080), never 169.254.169.254
#                   nor the host's own address
#   *               everything public, still no private address and no gateway
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
T hostaddr 20 wget -q -O - http://100.64.0.2/
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
check_g_denied "default: the host's own address 100.64.0.2 refused at once" "$out" hostaddr
check_g_ok "default: web.test still reachable after the refusals" "$out" web_again "hello from web"
check_eq "default: the private server saw no connection" 0 "$(rec_count private)"
check_eq "default: the metadata server saw no connection" 0 "$(rec_count meta)"
check_eq "default: the world's loopback server saw no connection" 0 "$(rec_count loopback)"
check_eq "default: the host-address server saw no connection" 0 "$(rec_count hostaddr)"
check_ge "default: stats denied_private" 2 "$(net_stat "$T_TMP/e1" denied_private)"
check_ge "default: stats denied_gateway" 1 "$(net_stat "$T_TMP/e1" denied_gateway)"
check_ge "default: stats: blocked destinations counted (tcp_blocked + denied_blocked)" 4 \
	$(( $(net_stat "$T_TMP/e1" tcp_blocked) + $(net_stat "$T_TMP/e1" denied_blocked) ))

# --- names
other=$(grep -c . "$W_DIR/http-other.log")
out=$(ML_ENV=MATCHLOCK_LOG=info mlw run --image $IMG --allow-host web.test --allow-host '*.example.test' \
	--allow-host echo.test:7 --allow-host private.test --allow-host meta.test -- sh -c "$GUEST_LIB
T web 20 wget -q -O - http://web.test/
T web8080 20 wget -q -O - http://web.test:8080/
T api 20 wget -q -O - http://api.example.test/
T www 20 wget -q -O - http://www.example.test/
T apex 20 wget -q -O - http://example.test/
T other 20 wget -q -O - http://other.test/
T other_ip 20 wget -q -O - http://203.0.113.10/
T echo 20 sh -c \"echo hi-echo | nc echo.test 7\"
T private_name 20 wget -q -O - http://private.test/
T meta_name 20 wget -q -O - http://meta.test/" 2>"$T_TMP/e2"); rc=$?
check_eq "allow-list run: exit 0" 0 "$rc"
check_g_ok "--allow-host web.test: web.test" "$out" web "hello from web"
check_g_ok "--allow-host web.test (no port): web.test:8080 too" "$out" web8080 "recorder web8080"
check_g_ok "--allow-host *.example.test: api.example.test" "$out" api "hello from api"
check_g_ok "--allow-host *.example.test: www.example.test" "$out" www "hello from api"
check_g_denied "--allow-host *.example.test: not the apex example.test" "$out" apex
check_g_denied "allow-list: other.test refused at once" "$out" other
check_g_denied "allow-list: an IP literal not in the list refused" "$out" other_ip
check_g_ok "--allow-host echo.test:7: echo" "$out" echo "hi-echo|"
check_g_denied "an allowed name with a private address is still refused" "$out" private_name
check_g_denied "an allowed name with the metadata address is still refused" "$out" meta_name
check_eq "allow-list: other.test's server saw nothing" "$other" "$(grep -c . "$W_DIR/http-other.log")"
check_eq "allow-list: example.test's server saw nothing" 0 "$(grep -c . "$W_DIR/http-apex.log")"
check_eq "allow-list: the private server saw no connection" 0 "$(rec_count private)"
check_eq "allow-list: the metadata server saw no connection" 0 "$(rec_count meta)"
# An allow-list turns interception on: TCP/80 is refused by the HTTP proxy, by the Host name
# (403 "Blocked by policy"; tests/e2e/net_intercept.sh), not at SYN time.
check_ge "allow-list: stats requests_blocked (TCP/80 refused by the proxy)" 3 "$(net_stat "$T_TMP/e2" requests_blocked)"

# --- ports, prefix globs, --add-host
w8080=$(rec_count web8080)
out=$(mlw run --image $IMG --allow-host 'api.*' --allow-host web.test:80 --allow-host added.test \
	--add-host added.test:203.0.113.10 -- sh -c "$GUEST_LIB
T hosts 10 cat /etc/hosts
T api 20 wget -q -O - http://api.example.test/
T web 20 wget -q -O - http://web.test/
T web8080 20 wget -q -O - http://web.test:8080/
T added 20 wget -q -O - http://added.test/
T apex 20 wget -q -O - http://example.test/" 2>"$T_TMP/e3"); rc=$?
check_eq "ports/globs run: exit 0" 0 "$rc"
check_g_ok "--add-host line in /etc/hosts" "$out" hosts "203.0.113.10 added.test"
check_g_ok "--allow-host api.*: api.example.test" "$out" api "hello from api"
check_g_ok "--allow-host web.test:80: port 80" "$out" web "hello from web"
check_g_denied "--allow-host web.test:80: port 8080 refused" "$out" web8080
check_eq "--allow-host web.test:80: the :8080 server saw nothing new" "$w8080" "$(rec_count web8080)"
check_g_ok "--allow-host added.test with --add-host added.test:IP" "$out" added "hello from other"
check_g_denied "--allow-host api.*: example.test refused" "$out" apex

# --- IP literals: the private block and the gateway lifted for exactly those addresses
out=$(mlw run --image $IMG --allow-host 10.99.0.10 --allow-host 10.0.2.2 --allow-host 169.254.169.254 \
	--allow-host 100.64.0.2 -- sh -c "$GUEST_LIB
T private_ip 20 wget -q -O - http://10.99.0.10/
T gateway 20 wget -q -O - http://10.0.2.2:8080/
T meta_ip 20 wget -q -O - http://169.254.169.254/
T hostaddr 20 wget -q -O - http://100.64.0.2/
T web 20 wget -q -O - http://web.test/" 2>"$T_TMP/e4"); rc=$?
check_eq "IP-literal run: exit 0" 0 "$rc"
check_g_ok "--allow-host 10.99.0.10 reaches the private server" "$out" private_ip "recorder private"
check_eq "the private server saw exactly that connection" 1 "$(rec_count private)"
check_g_ok "--allow-host 10.0.2.2: 10.0.2.2:8080 is the world's 127.0.0.1:8080" "$out" gateway "recorder loopback"
check_eq "the loopback server saw exactly that connection" 1 "$(rec_count loopback)"
check_g_denied "--allow-host 169.254.169.254 does not lift the always-blocked address" "$out" meta_ip
check_eq "the metadata server still saw nothing" 0 "$(rec_count meta)"
check_g_denied "--allow-host 100.64.0.2 does not open the host's own address" "$out" hostaddr
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
check_no_qemu_left "no VM left"
done_testing
