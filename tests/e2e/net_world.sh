#!/bin/bash
# net_world: the network tests' fake internet (tests/lib/networld.sh) works on its own, without
# matchlock: from inside it, as the unprivileged user, names resolve (A; AAAA empty NOERROR;
# unknown names NXDOMAIN; each DNS server is told apart), HTTP by name, downloads and uploads
# hash right, the echo server half-closes, recorders record, iperf3 answers, and nothing routes
# out of the world; matchlock's side and the internet are separate namespaces. If this file fails, the other net_* failures say nothing about matchlock.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
NT="/usr/bin/python3 $REPO/tests/lib/nettools.py"

out=$(as_user_world curl -s --max-time 10 http://web.test/)
check_eq "curl http://web.test/ by name (host side resolves in the world)" "hello from web" "$out"
out=$(as_user_world /usr/bin/python3 -c 'import socket; print(sorted({a[4][0] for a in socket.getaddrinfo("api.example.test", 80, socket.AF_INET)}))')
check_eq "getaddrinfo api.example.test" "['198.51.100.30']" "$out"
check_contains "A web.test" "rcode=0 an=1 addrs=198.51.100.10" "$(as_user_world $NT dns 8.8.8.8 web.test A)"
check_contains "AAAA web.test: NOERROR, no answer" "rcode=0 an=0 addrs=" "$(as_user_world $NT dns 8.8.8.8 web.test AAAA)"
check_contains "unknown .test name: NXDOMAIN" "rcode=3 an=0" "$(as_user_world $NT dns 8.8.8.8 nosuch.test A)"
check_contains "dnsserver.test from 8.8.8.8" "addrs=192.0.2.8" "$(as_user_world $NT dns 8.8.8.8 dnsserver.test A)"
check_contains "dnsserver.test from 8.8.4.4" "addrs=192.0.2.4" "$(as_user_world $NT dns 8.8.4.4 dnsserver.test A)"
check_contains "dnsserver.test from 1.1.1.1" "addrs=192.0.2.1" "$(as_user_world $NT dns 1.1.1.1 dnsserver.test A)"
check_ge "the 1.1.1.1 query log saw it" 1 "$(dns_log_count 1.1.1.1 dnsserver.test)"
check_contains "meta.test" "addrs=169.254.169.254" "$(as_user_world $NT dns 8.8.8.8 meta.test A)"

check_eq "echo with half-close" "echo-ok 300000" "$(as_user_world $NT client-echo 198.51.100.20 7 300000)"
out=$(as_user_world sh -c 'curl -s --max-time 30 http://web.test/big.bin | sha256sum')
check_eq "32 MiB download hashes right" "$W_BIG_SHA  -" "$out"
out=$(as_user_world curl -s --max-time 30 -T "$W_DIR/www/big.bin" http://web.test/upload)
check_eq "32 MiB PUT hashes right" "sha256 $W_BIG_SHA $((32 << 20))" "$out"
out=$(as_user_world sh -c 'head -c 100000 /dev/zero | curl -s --max-time 30 -H "Transfer-Encoding: chunked" --data-binary @- http://web.test/up')
check_eq "chunked POST hashes right" "sha256 $(head -c 100000 /dev/zero | sha256sum | cut -d' ' -f1) 100000" "$out"

check_eq "recorder: private.test had no connection yet" 0 "$(rec_count private)"
out=$(as_user_world curl -s --max-time 5 http://private.test/)
check_eq "recorder answers" "recorder private" "$out"
check_eq "recorder recorded it" 1 "$(rec_count private)"
out=$(as_user_world curl -s --max-time 5 http://127.0.0.1:8080/)
check_eq "loopback recorder answers" "recorder loopback" "$out"
out=$(as_user_world curl -s --max-time 5 http://$W_HOST_ADDR/)
check_eq "the host-address recorder answers" "recorder hostaddr" "$out"
check_eq "the internet has no 127.0.0.1:8080 (that is the host's)" "" "$(in_net curl -s --max-time 5 http://127.0.0.1:8080/)"
as_user_world /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hi", ("198.51.100.20", 9999))'
for _ in $(seq 1 20); do [ "$(rec_count udp9999)" = 1 ] && break; sleep 0.1; done
check_eq "UDP recorder recorded a datagram" 1 "$(rec_count udp9999)"
out=$(as_user_world timeout 20 iperf3 -c 198.51.100.20 -t 1 2>&1 | grep -c receiver)
check_eq "iperf3 server answers" 1 "$out"

s=$(date +%s%N)
as_user_world curl -s --max-time 2 http://9.9.9.9/ >/dev/null 2>&1; rc=$?
check_eq "nothing routes out of the world (curl to 9.9.9.9 times out)" 28 "$rc"
out=$(in_world ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')
check_eq "the host side's only devices" "lo up0 " "$out"
out=$(in_net ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')
check_eq "the internet's only devices" "down0 lo world0 " "$out"
done_testing
