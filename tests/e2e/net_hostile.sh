#!/bin/bash
# net_hostile: a guest that attacks its network, from the Debian test image (python3 with raw
# AF_PACKET sockets) in the fake internet of tests/lib/networld.sh, in one VM: non-DNS UDP
# (raw and through a socket), DNS to an unconfigured server, IPv6, raw IP protocol 47,
# spoofed sources, bad IP/TCP/UDP checksums, truncated frames, fragments, unknown ethertypes,
# ICMP to the internet, DHCP, SYN floods (2000 to a private address, more to the metadata
# address, the world's loopback and the flow slots), an ARP flood, malformed DNS queries and a
# DNS flood; TCP connects to the gateway, 169.254.169.254, 10.99.0.10, the host's own address
# and the virtual network's own addresses. Proven: every recorder behind those saw nothing, the supervisor
# counted the drops by reason, the denied connects were refused at once, and the same VM
# still resolves and downloads afterwards.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
NT="python3 /tmp/nt.py"
dns11=$(dns_log_count 1.1.1.1)
FRAMES="udp9999=50 udpdns_other=5 ipv6=20 gre=20 spoof_tcp=20 spoof_dns=20 bad_ipcsum=20 bad_tcpcsum=20
bad_udpcsum=20 trunc_eth=20 trunc_arp=20 trunc_ip=20 trunc_len=20 frag=20 ethertype=20 icmp_out=20 dhcp=5
syn_private=2000 syn_meta=500 syn_loop=500 syn_slot=200 arp_flood=2000 arp_spoof=20"
FRAMES=$(echo $FRAMES)
n_frames=$(echo "$FRAMES" | tr ' ' '\n' | awk -F= '{s += $2} END {print s}')

s=$(date +%s)
out=$(ML_ENV=MATCHLOCK_LOG=info ML_TIMEOUT=200 mlw run --image "$DEB_IMG" -- sh -c "$GUEST_LIB
echo $(guest_tool) | base64 -d >/tmp/nt.py
T before 20 curl -sS --max-time 15 http://web.test/
T udpsend 10 $NT udpsend 198.51.100.20 9999 30
T frames 150 $NT frames $FRAMES
T after_frames 20 curl -sS --max-time 15 http://web.test/
T c_gw 10 $NT connect 10.0.2.2 8080
T c_meta 10 $NT connect 169.254.169.254 80
T c_priv 10 $NT connect 10.99.0.10 80
T c_alias 10 $NT connect 10.0.2.3 80
T c_slot 10 $NT connect 10.0.2.150 80
T c_host 10 $NT connect $W_HOST_ADDR 80
T c_web 10 $NT connect 198.51.100.10 80
T dnsbad 10 $NT dnsbad 8.8.8.8
T dnsbad_alias 10 $NT dnsbad 10.0.2.3
T dnsflood 30 $NT dnsflood 8.8.8.8 1000
T dns_after 10 $NT dns 8.8.8.8 web.test A
T dl_after 60 sh -c \"curl -sS --max-time 50 http://web.test/1m.bin | sha256sum\"" 2>"$T_TMP/e1"); rc=$?
echo "# hostile run took $(( $(date +%s) - s ))s"
check_eq "hostile run: exit 0" 0 "$rc"
check_g_ok "HTTP works before" "$out" before "hello from web"
check_g_ok "the frames were sent" "$out" frames "frames-sent $n_frames"
check_g_ok "HTTP works right after the floods" "$out" after_frames "hello from web"

# connect PROBE DESC [MAX_S]: refused, reset or unreachable (no ARP answer for the address: the
# guest kernel gives up after 3 s) within MAX_S (5) s; never a timeout, never "open"
check_refused() {
	l=$(g_line "$out" "$1")
	secs=$(printf '%s' "$l" | awk '{print $6}' | tr -d '|')
	case "$l" in
	"OK "*" reset "*|"OK "*" refused "*|"OK "*" error-113 "*)
		if awk -v s="$secs" -v m="${3:-5}" 'BEGIN {exit !(s + 0 < m + 0)}'; then ok "$2 ($(printf '%s' "$l" | awk '{print $5}') in ${secs}s)"
		else fail "$2 (refused only after ${secs}s)"; fi ;;
	*) fail "$2 ([$l])" ;;
	esac
}
check_refused c_gw "TCP to the gateway 10.0.2.2:8080 refused"
check_refused c_meta "TCP to 169.254.169.254 refused"
check_refused c_priv "TCP to 10.99.0.10 refused"
check_refused c_alias "TCP to the DNS alias 10.0.2.3 refused"
check_refused c_slot "TCP to a flow slot 10.0.2.150 unreachable" 8
check_refused c_host "TCP to the host's own address $W_HOST_ADDR refused"
check_g_ok "TCP to a public address still opens" "$out" c_web "open:hello_from_web"
check_g_ok "malformed DNS queries sent" "$out" dnsbad "dnsbad-sent"
check_g_ok "a DNS flood of 1000 queries" "$out" dnsflood "dnsflood 1000"
echo "# dnsflood: $(g_line "$out" dnsflood)"
check_g_ok "DNS still answers afterwards" "$out" dns_after "rcode=0 an=1 addrs=198.51.100.10"
check_g_ok "a 1 MiB download afterwards is intact" "$out" dl_after "$W_1M_SHA"

check_eq "no datagram reached the UDP recorder" 0 "$(rec_count udp9999)"
check_eq "the private server saw no connection" 0 "$(rec_count private)"
check_eq "the metadata server saw no connection" 0 "$(rec_count meta)"
check_eq "the host's loopback server saw no connection" 0 "$(rec_count loopback)"
check_eq "the host-address server saw no connection" 0 "$(rec_count hostaddr)"
check_eq "1.1.1.1 (not configured) was never asked" "$dns11" "$(dns_log_count 1.1.1.1)"
check_eq "no spoofed-source DNS query reached 8.8.8.8" 0 "$(dns_log_count 8.8.8.8 spoof)"

st() { net_stat "$T_TMP/e1" "$1"; }
check_ge "drop udp_policy (80 non-DNS datagrams + 5 DNS to 1.1.1.1)" 85 "$(st udp_policy)"
check_ge "drop ipv6" 20 "$(st ipv6)"
check_ge "drop ip_proto (GRE)" 20 "$(st ip_proto)"
check_ge "drop ip_src (spoofed sources)" 40 "$(st ip_src)"
check_ge "drop ip_csum" 20 "$(st ip_csum)"
check_ge "drop tcp_csum" 20 "$(st tcp_csum)"
check_ge "drop udp_csum" 20 "$(st udp_csum)"
check_ge "drops for truncated frames (eth_short + ip_header + tcp_header)" 60 $(( $(st eth_short) + $(st ip_header) + $(st tcp_header) ))
check_ge "drop ip_frag" 20 "$(st ip_frag)"
check_ge "drop ethertype" 20 "$(st ethertype)"
check_ge "drop icmp_policy" 20 "$(st icmp_policy)"
check_ge "drop dhcp" 5 "$(st dhcp)"
check_ge "drop arp_bad (ARP flood, spoofed and truncated ARP)" 2040 "$(st arp_bad)"
check_ge "SYN floods refused (tcp_blocked + tcp_denied)" 3200 $(( $(st tcp_blocked) + $(st tcp_denied) ))
check_ge "mitm denied the 10.99.0.10 flood (denied_private + denied_blocked)" 2000 $(( $(st denied_private) + $(st denied_blocked) ))
check_ge "drop dns_query (malformed queries)" 20 "$(st dns_query)"
grep 'net: ' "$T_TMP/e1" | sed 's/^/# /'
check_no_qemu_left "no VM left"
done_testing
