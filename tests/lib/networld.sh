# tests/lib/networld.sh - sourced after harness.sh (and registry.sh, if used) by the network
# tests: a closed fake internet, and matchlock run as the unprivileged user on a "host" that is
# connected only to it. Two network namespaces of this test file's own:
#   host ($W_NS)      where matchlock (and any client of a -p forward) runs: lo, and a veth
#                     up0 = 198.51.100.250/30 with the default route via 198.51.100.249. Its
#                     own services: record 127.0.0.1:8080 ("loopback", the guest's 10.0.2.2:8080
#                     when the gateway is allowed) and record 198.51.100.250:80 ("hostaddr": the
#                     host's own address, which no policy may open). The link uses public
#                     (TEST-NET-2) addresses on purpose: only the host-address rule refuses them,
#                     so the tests prove that rule, not an always-blocked range.
#   internet ($W_NET) down0 = 198.51.100.249/30 and an `ifb` holding every world address and the
#                     default route, so whatever is not addressed to the world is dropped.
# (matchlock refuses the host's own interface addresses, so the world cannot live in its
# namespace.) /etc/netns/$W_NS/resolv.conf points the host at 8.8.8.8.
#
#   world_up        both namespaces, addresses, DNS and servers; sets the EXIT trap (which
#                   still runs the trap set before). Returns non-zero if anything did not start.
#   world_down      kills every server and deletes the namespaces (the EXIT trap calls it).
#   mlw ARGS...     matchlock on the host as the test user (env as harness's ml: ML_ENV;
#                   ML_TIMEOUT=S: SIGTERM after S seconds, default 180, so a hung run cannot
#                   hang the file).
#   mlw_bg ARGS...  the same in the background, no timeout; ML_PID is matchlock's own pid.
#   in_world CMD... any command on the host side, as root; as_user_world: as the test user.
#   in_net CMD...   any command inside the internet, as root.
#   rec_count NAME  lines in a recorder's log (connections / datagrams that arrived).
#   dns_log_count SERVER [NAME]  queries (for NAME) the DNS server SERVER was asked.
#
# The internet (hosts, by the names the guest resolves through its DNS servers):
#   8.8.8.8, 8.8.4.4, 1.1.1.1  DNS (three dnsmasq instances, same records; `dnsserver.test`
#                              says which one answered: 192.0.2.8, 192.0.2.4, 192.0.2.1)
#   web.test       198.51.100.10  http :80 (page "hello from web", files: big.bin = 32 MiB random,
#                                 sha256 in $W_BIG_SHA; 1m.bin, $W_1M_SHA; PUT/POST replies
#                                 "sha256 HEX LEN"), record :8080 ("web8080")
#   echo.test      198.51.100.20  TCP echo :7 (half-closes after the client's EOF), udp
#                                 recorder :9999 ("udp9999"), iperf3 -s :5201
#   api.example.test, www.example.test  198.51.100.30  http :80 ("api")
#   example.test   198.51.100.40  http :80 ("apex")
#   other.test     203.0.113.10   http :80 ("other")
#   private.test   10.99.0.10     record :80 ("private")  - a private address with a live server
#   meta.test      169.254.169.254 record :80 ("meta")
#   loop.test      127.0.0.1
#   sink.test      198.51.100.50  sink :9000 ("sink"): accepts and never reads
#   alias.test     CNAME edge.cdn.test; edge.cdn.test 198.51.100.10 (web's server)
#   always-blocked ranges, each with a live recorder on :80: cgnat.test 100.64.1.1 ("cgnat"),
#                  100.100.100.200 ("alibaba"), 168.63.129.16 ("azure"), 192.0.0.10 ("ietf"),
#                  198.18.0.10 ("bench")
# Names under .test that are not listed get NXDOMAIN; AAAA of listed names is empty NOERROR.
#
# world_tls_up (after world_up) adds the web servers of tests/lib/tlsworld.py (header echo,
# httpbin-like pages, SSE, WebSocket echo, git smart HTTP behind Basic auth; each logs every
# request with its Authorization to $W_DIR/web-NAME.log) and a world CA ($W_TLS_CA: give it to
# matchlock as SSL_CERT_FILE, it verifies the upstreams):
#   web.test:443           https "web"        echo.test:80 http "echoplain", :443 https "echo"
#   api/www.example.test:443 nginx with HTTP/2 ("hello from api", /big.bin = 8 MiB random,
#                            sha256 in $W_H2_SHA; access log $W_DIR/nginx-access.log: the
#                            request line, Authorization)
#   other.test:443 https "other" with a certificate for wrong.test (an upstream that must not
#                            verify)
#   $W_GIT_TOKEN           the password of https://echo.test/git/repo.git (any user name)

W_NS=mlw-$T_NAME-$$
W_NET=mlw-$T_NAME-$$-net
W_DIR=$T_TMP/world
W_PIDS=""
W_DNS_SERVERS="8.8.8.8 8.8.4.4 1.1.1.1"
W_HOST_ADDR=198.51.100.250
W_BLOCKED_RANGES="100.64.1.1:cgnat 100.100.100.200:alibaba 168.63.129.16:azure 192.0.0.10:ietf 198.18.0.10:bench"
W_TTL=900
ML_TIMEOUT=${ML_TIMEOUT:-180}

# in_world CMD...: CMD on the host side (matchlock's namespace), as root.
in_world() {
	ip netns exec "$W_NS" "$@"
}

in_net() {
	ip netns exec "$W_NET" "$@"
}

_world_ifaces() {
	in_world ip link set lo up && in_net ip link set lo up &&
		ip -n "$W_NS" link add up0 type veth peer name down0 netns "$W_NET" &&
		in_world ip link set up0 up && in_net ip link set down0 up &&
		in_world ip addr add "$W_HOST_ADDR/30" dev up0 && in_net ip addr add 198.51.100.249/30 dev down0 &&
		in_world ip route add default via 198.51.100.249 dev up0 &&
		in_net ip link add world0 type ifb && in_net ip link set world0 up || return 1
	for a in 8.8.8.8 8.8.4.4 1.1.1.1 198.51.100.10 198.51.100.20 198.51.100.30 198.51.100.40 \
		198.51.100.50 203.0.113.10 10.99.0.10 169.254.169.254 $(for r in $W_BLOCKED_RANGES; do printf '%s ' "${r%%:*}"; done); do
		in_net ip addr add "$a/32" dev world0 || return 1
	done
	in_net ip route add default dev world0
}

# _world_dns ADDR CODE: one dnsmasq answering on ADDR only; dnsserver.test -> 192.0.2.CODE.
_world_dns() {
	in_net timeout "$W_TTL" /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
		--no-poll --user=root --pid-file= --bind-interfaces --listen-address="$1" --port=53 \
		--local=/test/ --domain-needed --local-ttl=60 --log-queries --log-facility="$W_DIR/dns-$1.log" \
		--host-record=web.test,198.51.100.10 --host-record=echo.test,198.51.100.20 \
		--host-record=api.example.test,198.51.100.30 --host-record=www.example.test,198.51.100.30 \
		--host-record=example.test,198.51.100.40 --host-record=other.test,203.0.113.10 \
		--host-record=private.test,10.99.0.10 --host-record=loop.test,127.0.0.1 \
		--host-record=meta.test,169.254.169.254 --host-record=dnsserver.test,192.0.2."$2" \
		--host-record=sink.test,198.51.100.50 --host-record=cgnat.test,100.64.1.1 \
		--host-record=edge.cdn.test,198.51.100.10 --cname=alias.test,edge.cdn.test \
		>"$W_DIR/dnsmasq-$1.out" 2>&1 &
	W_PIDS="$W_PIDS $!"
}

world_up() {
	mkdir -p "$W_DIR/www" && chmod 0755 "$W_DIR" "$W_DIR/www"
	# compose with the EXIT trap already set (harness.sh's, registry.sh's): world first
	eval "set -- $(trap -p EXIT)"
	_W_PREV_TRAP=${3:-}
	trap 'world_down; eval "$_W_PREV_TRAP"' EXIT
	ip netns add "$W_NS" && ip netns add "$W_NET" || { echo "networld: cannot create the namespaces" >&2; return 1; }
	mkdir -p "/etc/netns/$W_NS"
	printf 'nameserver 8.8.8.8\n' >"/etc/netns/$W_NS/resolv.conf"
	_world_ifaces || { echo "networld: cannot set up the world's links and addresses" >&2; return 1; }
	head -c $((32 << 20)) /dev/urandom >"$W_DIR/www/big.bin"
	W_BIG_SHA=$(sha256sum "$W_DIR/www/big.bin" | cut -d' ' -f1)
	printf 'small file\n' >"$W_DIR/www/small.txt"
	head -c $((1 << 20)) /dev/urandom >"$W_DIR/www/1m.bin"
	W_1M_SHA=$(sha256sum "$W_DIR/www/1m.bin" | cut -d' ' -f1)
	chmod 0644 "$W_DIR/www/"*
	_world_dns 8.8.8.8 8
	_world_dns 8.8.4.4 4
	_world_dns 1.1.1.1 1
	in_net timeout "$W_TTL" /usr/bin/python3 "$REPO/tests/lib/nettools.py" serve "$W_DIR" "$W_TTL" \
		http:198.51.100.10:80:web record:198.51.100.10:8080:web8080 echo:198.51.100.20:7:echo \
		udp:198.51.100.20:9999:udp9999 http:198.51.100.30:80:api http:198.51.100.40:80:apex \
		http:203.0.113.10:80:other record:10.99.0.10:80:private record:169.254.169.254:80:meta \
		sink:198.51.100.50:9000:sink $(for r in $W_BLOCKED_RANGES; do printf 'record:%s:80:%s ' "${r%%:*}" "${r##*:}"; done) \
		>"$W_DIR/servers.out" 2>&1 &
	W_PIDS="$W_PIDS $!"
	in_world timeout "$W_TTL" /usr/bin/python3 "$REPO/tests/lib/nettools.py" serve "$W_DIR" "$W_TTL" \
		record:127.0.0.1:8080:loopback record:"$W_HOST_ADDR":80:hostaddr >"$W_DIR/host-servers.out" 2>&1 &
	W_PIDS="$W_PIDS $!"
	in_net timeout "$W_TTL" iperf3 -s -B 198.51.100.20 -p 5201 >"$W_DIR/iperf3.out" 2>&1 &
	W_PIDS="$W_PIDS $!"
	for _ in $(seq 1 100); do
		grep -q ready "$W_DIR/servers.out" 2>/dev/null && grep -q ready "$W_DIR/host-servers.out" 2>/dev/null &&
			_world_dns_ready && break
		sleep 0.1
	done
	grep -q ready "$W_DIR/servers.out" || { echo "networld: servers did not start: $(tail -3 "$W_DIR/servers.out")" >&2; return 1; }
	grep -q ready "$W_DIR/host-servers.out" || { echo "networld: host servers did not start: $(tail -3 "$W_DIR/host-servers.out")" >&2; return 1; }
	_world_dns_ready || { echo "networld: DNS did not start: $(cat "$W_DIR"/dnsmasq-*.out | tail -3)" >&2; return 1; }
}

# _world_dns_ready: every dnsmasq answers (a UDP query each, one try of 1 s).
_world_dns_ready() {
	for s in $W_DNS_SERVERS; do
		in_world /usr/bin/python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x04test\x00\x00\x01\x00\x01"
s.sendto(q, (sys.argv[1], 53)); s.recvfrom(512)' "$s" 2>/dev/null || return 1
	done
}

# _world_cert NAME HOST...: a key and a certificate for HOSTs signed by the world CA.
_world_cert() {
	_n=$1; shift
	_san=$(printf 'DNS:%s,' "$@"); _san=${_san%,}
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
		-keyout "$W_DIR/tls/$_n.key" -out "$W_DIR/tls/$_n.csr" 2>/dev/null &&
		printf 'subjectAltName=%s\n' "$_san" >"$W_DIR/tls/$_n.ext" &&
		openssl x509 -req -in "$W_DIR/tls/$_n.csr" -CA "$W_DIR/tls/ca.crt" -CAkey "$W_DIR/tls/ca.key" \
			-CAcreateserial -days 7 -extfile "$W_DIR/tls/$_n.ext" -out "$W_DIR/tls/$_n.crt" 2>/dev/null
}

# _world_nginx: nginx with HTTP/2 on 198.51.100.30:443 (api/www.example.test), in the internet.
_world_nginx() {
	mkdir -p "$W_DIR/nginx/www" "$W_DIR/nginx/tmp" && printf 'hello from api\n' >"$W_DIR/nginx/www/index.html" &&
		head -c $((8 << 20)) /dev/urandom >"$W_DIR/nginx/www/big.bin" || return 1
	W_H2_SHA=$(sha256sum "$W_DIR/nginx/www/big.bin" | cut -d' ' -f1)
	cat >"$W_DIR/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W_DIR/nginx/nginx.pid;
error_log $W_DIR/nginx/error.log;
events { worker_connections 256; }
http {
	log_format auth '\$request auth=\$http_authorization';
	access_log $W_DIR/nginx-access.log auth;
	client_body_temp_path $W_DIR/nginx/tmp; proxy_temp_path $W_DIR/nginx/tmp;
	fastcgi_temp_path $W_DIR/nginx/tmp; uwsgi_temp_path $W_DIR/nginx/tmp; scgi_temp_path $W_DIR/nginx/tmp;
	server {
		listen 198.51.100.30:443 ssl http2;
		ssl_certificate $W_DIR/tls/api.crt;
		ssl_certificate_key $W_DIR/tls/api.key;
		root $W_DIR/nginx/www;
	}
}
EOF
	in_net timeout "$W_TTL" nginx -c "$W_DIR/nginx/nginx.conf" >"$W_DIR/nginx/out" 2>&1 &
	W_PIDS="$W_PIDS $!"
}

# _world_git: a bare repository with one commit, served at /git/repo.git.
_world_git() {
	W_GIT_TOKEN=ghp_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	mkdir -p "$W_DIR/git" && printf '%s\n' "$W_GIT_TOKEN" >"$W_DIR/git/.token" &&
		git init -q --bare "$W_DIR/git/repo.git" && git -C "$W_DIR/git/repo.git" config http.receivepack false &&
		git -C "$W_DIR/git/repo.git" config --bool http.uploadpack true &&
		mkdir -p "$W_DIR/git/src" && printf 'hello from git\n' >"$W_DIR/git/src/README" &&
		git -C "$W_DIR/git/src" init -q && git -C "$W_DIR/git/src" add README &&
		git -C "$W_DIR/git/src" -c user.name=t -c user.email=t@t commit -q -m first &&
		git -C "$W_DIR/git/src" push -q "$W_DIR/git/repo.git" HEAD:refs/heads/main 2>/dev/null &&
		git -C "$W_DIR/git/repo.git" symbolic-ref HEAD refs/heads/main
}

world_tls_up() {
	mkdir -p "$W_DIR/tls" && chmod 0755 "$W_DIR/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
		-subj "/CN=matchlock test world CA" -keyout "$W_DIR/tls/ca.key" -out "$W_DIR/tls/ca.crt" 2>/dev/null &&
		_world_cert web web.test && _world_cert echo echo.test &&
		_world_cert api api.example.test www.example.test && _world_cert wrong wrong.test &&
		_world_git && _world_nginx || { echo "networld: cannot make the TLS world" >&2; return 1; }
	chmod 0644 "$W_DIR/tls/ca.crt"
	W_TLS_CA=$W_DIR/tls/ca.crt
	in_net timeout "$W_TTL" /usr/bin/python3 "$REPO/tests/lib/tlsworld.py" serve "$W_DIR" "$W_TTL" \
		https:198.51.100.10:443:web https:198.51.100.20:443:echo http:198.51.100.20:80:echoplain \
		https:203.0.113.10:443:other:wrong >"$W_DIR/tls-servers.out" 2>&1 &
	W_PIDS="$W_PIDS $!"
	for _ in $(seq 1 100); do
		grep -q ready "$W_DIR/tls-servers.out" 2>/dev/null && [ -s "$W_DIR/nginx/nginx.pid" ] && return 0
		sleep 0.1
	done
	echo "networld: TLS servers did not start: $(tail -3 "$W_DIR/tls-servers.out" "$W_DIR/nginx/error.log" 2>&1)" >&2
	return 1
}

# web_count NAME [PATTERN]: requests (matching PATTERN) a tlsworld server received.
web_count() {
	[ -f "$W_DIR/web-$1.log" ] || { echo 0; return; }
	grep -c -- "${2:-.}" "$W_DIR/web-$1.log" || true
}

world_down() {
	for p in $W_PIDS; do kill "$p" 2>/dev/null; done
	for p in $W_PIDS; do
		for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	W_PIDS=""
	# anything else still inside (a forwarded client, a stray matchlock) goes with it
	for p in $(ip netns pids "$W_NS" 2>/dev/null) $(ip netns pids "$W_NET" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	ip netns del "$W_NS" 2>/dev/null
	ip netns del "$W_NET" 2>/dev/null
	rm -rf "/etc/netns/$W_NS"
}

mlw() {
	# shellcheck disable=SC2086
	${ML_TIMEOUT:+timeout -k 10 $ML_TIMEOUT} ip netns exec "$W_NS" setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$ML_BIN" "$@"
}

# ip netns exec, setpriv and env all exec, so $! is matchlock itself.
mlw_bg() {
	# shellcheck disable=SC2086
	ip netns exec "$W_NS" setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$ML_BIN" "$@" &
	ML_PID=$!
}

# as_user_world CMD...: a command in the world as the test user.
as_user_world() {
	ip netns exec "$W_NS" setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" "$@"
}

rec_count() {
	[ -f "$W_DIR/rec-$1.log" ] || { echo 0; return; }
	grep -c . "$W_DIR/rec-$1.log" || true
}

# dns_log_count SERVER [NAME]: queries SERVER received (for NAME), from dnsmasq's query log.
dns_log_count() {
	[ -f "$W_DIR/dns-$1.log" ] || { echo 0; return; }
	grep -c "query\[[A-Z]*\] ${2:-}" "$W_DIR/dns-$1.log" || true
}

# net_stat FILE KEY: the number after "KEY=" in matchlock's net: stats lines (0 if absent).
net_stat() {
	v=$(grep -o "[ :]$2=[0-9]*" "$1" | tail -1 | cut -d= -f2)
	echo "${v:-0}"
}

# check_ge DESC MIN GOT: GOT is a number >= MIN.
check_ge() {
	if [ -n "$3" ] && [ "$3" -ge "$2" ] 2>/dev/null; then ok "$1 ($3)"; else fail "$1 (wanted >= $2, got [$3])"; fi
}

# guest_tool: nettools.py as one base64 word, for `sh -c "echo $(guest_tool) | base64 -d >/tmp/nt.py"`.
guest_tool() {
	base64 -w0 "$REPO/tests/lib/nettools.py"
}

# In-guest probes. GUEST_LIB defines, for the guest's sh (busybox or Debian), `T NAME SECS CMD...`:
# runs CMD under `timeout SECS` and prints one line "@NAME OK|FAIL ELAPSED_S OUTPUT" (output's
# first 300 bytes, newlines as |). No single quotes in here: matchlock quotes the whole script.
GUEST_LIB='T() { n=$1; t=$2; shift 2; s=$(cut -d" " -f1 /proc/uptime); if timeout "$t" "$@" >/tmp/.t.out 2>&1; then r=OK; else r=FAIL; fi; e=$(cut -d" " -f1 /proc/uptime); echo "@$n $r $(awk -v a="$s" -v b="$e" "BEGIN {printf \"%.2f\", b - a}") $(head -c 300 /tmp/.t.out | tr "\n" "|")"; }'

# g_line OUT NAME: the probe's "OK|FAIL SECS OUTPUT" (empty if the probe never ran).
g_line() {
	printf '%s\n' "$1" | grep -m1 "^@$2 " | cut -d' ' -f2-
}

# check_g_ok DESC OUT NAME [NEEDLE]: probe NAME succeeded (and its output contains NEEDLE).
check_g_ok() {
	_l=$(g_line "$2" "$3")
	case "$_l" in
	"OK "*"${4:-}"*) ok "$1" ;;
	*) fail "$1 (probe $3: [${_l:-never ran}]${4:+, wanted [$4]})" ;;
	esac
}

# check_g_denied DESC OUT NAME [MAX_S] [NEEDLE]: probe NAME failed, within MAX_S seconds
# (default 5: a reset, not a timeout), and its output contains NEEDLE.
check_g_denied() {
	_l=$(g_line "$2" "$3")
	_s=$(printf '%s' "$_l" | cut -d' ' -f2)
	case "$_l" in
	"FAIL "*"${5:-}"*)
		if awk -v s="$_s" -v m="${4:-5}" 'BEGIN {exit !(s + 0 < m + 0)}'; then ok "$1 (failed in ${_s}s)"
		else fail "$1 (failed, but only after ${_s}s: a timeout, not a refusal: [$_l])"; fi ;;
	*) fail "$1 (probe $3: [${_l:-never ran}], wanted a failure${5:+ saying [$5]})" ;;
	esac
}

# world_debian_image: the Debian test image (tests/lib/mkdebian.sh: python3, curl, iperf3)
# pushed to a loopback registry (registry.sh, sourced before this file) and pulled into this
# file's own store from the host side; runs in the world then find it cached. Sets DEB_IMG.
world_debian_image() {
	_layout=$(sh "$REPO/tests/lib/mkdebian.sh" 2>"$T_TMP/deb.err") || { echo "networld: Debian image: $(cat "$T_TMP/deb.err")" >&2; return 1; }
	private_cache debcache
	reg_start http || return 1
	reg_push "$_layout" bookworm "$REG" debian/net:bookworm || return 1
	ml pull "$REG/debian/net:bookworm" >"$T_TMP/pull.out" 2>&1 || { echo "networld: pull: $(tail -3 "$T_TMP/pull.out")" >&2; return 1; }
	DEB_IMG=$REG/debian/net:bookworm
}

# world_up_or_exit [debian]: world_up (and, with "debian", world_debian_image), or one failed
# check and the end of the test file.
world_up_or_exit() {
	world_up || { fail "the test world comes up"; done_testing; exit 1; }
	[ "${1:-}" = debian ] || return 0
	_s=$(date +%s)
	world_debian_image || { fail "the Debian test image is pulled"; done_testing; exit 1; }
	echo "# Debian image ready in $(( $(date +%s) - _s ))s"
}
