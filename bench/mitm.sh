#!/bin/bash
# bench/mitm.sh - issue 11's figures for `make bench`, sourced by bench/run.sh (uses its W,
# median, ratio, row) or run alone. The intercepting TLS proxy's engine, on the host, without a
# VM: tests/tools/mlproxy runs mitm/ exactly as a sandbox does (policy by SNI, leaves from a CA,
# upstream verification against a test CA, the audit file) as a local proxy, so the same client
# can talk to it, to mitmproxy (mitmdump in reverse mode, its documented way to front one
# server) and to the server directly, in the same run. The server is nginx on 127.0.0.1 (2
# workers, ECDSA P-256 certificate, 1 KiB and 1 GiB files, access log off).
#   1. HTTPS requests/s, keep-alive, 16 connections (wrk -t2 -c16, 5 s)
#   2. HTTPS requests/s, a new connection per request (the same with "Connection: close"; wrk
#      resumes TLS sessions, as real clients do)
#   3. MB/s of a 1 GiB download (curl; mitmproxy with stream_large_bodies, or it buffers it all)
#   4. memory per idle intercepted flow: RSS of mlproxy before/after 200 TLS connections that
#      made one request each and stay open
# Each throughput figure is the median of BENCH_MITM_REPS runs (default 3), the three targets
# interleaved so a busy moment hurts all of them alike.
set -u
declare -F row >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NRM=${BENCH_MITM_REPS:-3}
MB=$W/mitm
MB_PIDS=""
mkdir -p "$MB/www" && chmod 0755 "$W" "$MB"
for t in nginx wrk mitmdump openssl curl; do
	command -v $t >/dev/null || { echo "bench/mitm.sh: $t is missing (scripts/setup.sh installs it)"; return 0 2>/dev/null || exit 0; }
done
PROXY=$REPO/build/tests/tools/mlproxy
[ -x "$PROXY" ] || { echo "bench/mitm.sh: build first (make)"; return 0 2>/dev/null || exit 0; }

mb_stop() { for p in $MB_PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [ -f "$MB/nginx.pid" ] && kill "$(cat "$MB/nginx.pid" 2>/dev/null)" 2>/dev/null; }
trap 'mb_stop; rm -rf "$W"' EXIT

# --- the server
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=bench CA" \
	-keyout "$MB/ca.key" -out "$MB/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
	-keyout "$MB/srv.key" -out "$MB/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$MB/ext"
openssl x509 -req -in "$MB/srv.csr" -CA "$MB/ca.crt" -CAkey "$MB/ca.key" -CAcreateserial -days 2 \
	-extfile "$MB/ext" -out "$MB/srv.crt" 2>/dev/null
head -c 1024 /dev/urandom >"$MB/www/1k"
truncate -s 1G "$MB/www/1g"
cat >"$MB/nginx.conf" <<EOF
worker_processes 2;
pid $MB/nginx.pid;
error_log $MB/nginx-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	server {
		listen 127.0.0.1:18443 ssl;
		ssl_certificate $MB/srv.crt;
		ssl_certificate_key $MB/srv.key;
		keepalive_requests 1000000;
		root $MB/www;
	}
}
EOF
nginx -c "$MB/nginx.conf" || { echo "bench/mitm.sh: nginx did not start"; return 0 2>/dev/null || exit 0; }

# --- ours: the engine as a reverse proxy; localhost "resolves" to a public-looking address whose
# connects go to nginx (mlproxy's test hooks), so the full policy path runs
SSL_CERT_FILE=$MB/ca.crt "$PROXY" --ca "$MB/ca" --dst 198.51.100.10:443 --resolve localhost=198.51.100.10 \
	--map 198.51.100.10:443=127.0.0.1:18443 --allow localhost --listen 127.0.0.1:18444 \
	--audit "$MB/egress.jsonl" >"$MB/proxy.out" 2>&1 &
OURS_PID=$!
MB_PIDS="$MB_PIDS $OURS_PID"
# --- mitmproxy in reverse mode (its documented way to front one server), and a second one that streams bodies
mitmdump --mode reverse:https://localhost:18443 --ssl-insecure --listen-host 127.0.0.1 -p 18445 -q \
	>"$MB/mitm1.out" 2>&1 &
MB_PIDS="$MB_PIDS $!"
mitmdump --mode reverse:https://localhost:18443 --ssl-insecure --listen-host 127.0.0.1 -p 18446 -q \
	--set stream_large_bodies=1m >"$MB/mitm2.out" 2>&1 &
MB_PIDS="$MB_PIDS $!"
for _ in $(seq 1 100); do
	curl -sk -o /dev/null https://localhost:18444/1k && curl -sk -o /dev/null https://localhost:18445/1k &&
		curl -sk -o /dev/null https://localhost:18446/1k && break
	sleep 0.2
done

rps() { wrk -t2 -c16 -d5s ${2:+-H "$2"} "https://localhost:$1/1k" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }
mbs() { curl -sk -o /dev/null -w '%{speed_download}' "https://localhost:$1/1g" | awk '{printf "%.0f", $1 / 1e6}'; }
for i in $(seq "$NRM"); do
	for p in 18443 18444 18445; do echo "$(rps $p)" >>"$MB/ka-$p"; done
	for p in 18443 18444 18445; do echo "$(rps $p 'Connection: close')" >>"$MB/nc-$p"; done
	for p in 18443 18444 18446; do echo "$(mbs $p)" >>"$MB/dl-$p"; done
done
m() { median <"$MB/$1"; }
ka_d=$(m ka-18443) ka_o=$(m ka-18444) ka_m=$(m ka-18445)
nc_d=$(m nc-18443) nc_o=$(m nc-18444) nc_m=$(m nc-18445)
dl_d=$(m dl-18443) dl_o=$(m dl-18444) dl_m=$(m dl-18446)

# --- memory per idle intercepted flow
rss() { awk '/VmRSS/ {print $2}' "/proc/$OURS_PID/status"; }
python3 - "$OURS_PID" >"$MB/idle.out" <<'PY'
import socket, ssl, sys, time
pid = int(sys.argv[1])
rss = lambda: int(next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def one():
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 18444)), server_hostname="localhost")
    t.sendall(b"GET /1k HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while len(got) < 1024 or b"\r\n\r\n" not in got:
        got += t.recv(65536)
    return t
keep = [one() for _ in range(20)]
time.sleep(0.5); before = rss()
keep += [one() for _ in range(200)]
time.sleep(0.5); after = rss()
print(f"{(after - before) / 200:.1f}")
PY
idle=$(cat "$MB/idle.out")

echo "# TLS interception engine (mitm/ via tests/tools/mlproxy on the host, no VM; nginx upstream; $NRM runs, medians)"
row "HTTPS keep-alive req/s (c=16)" "$ka_o" "$ka_m" "mitmproxy 8 reverse" "$(ratio "$ka_o" "$ka_m")" ">= 20"
row "HTTPS keep-alive req/s (c=16)" "$ka_o" "$ka_d" "direct to nginx" "$(ratio "$ka_o" "$ka_d")" ">= 0.3"
row "HTTPS new conn/request req/s" "$nc_o" "$nc_m" "mitmproxy 8 reverse" "$(ratio "$nc_o" "$nc_m")" ">= 10"
row "HTTPS new conn/request req/s" "$nc_o" "$nc_d" "direct to nginx" "$(ratio "$nc_o" "$nc_d")" "-"
row "1 GiB HTTPS download MB/s" "$dl_o" "$dl_d" "direct to nginx" "$(ratio "$dl_o" "$dl_d")" ">= 0.7"
row "1 GiB HTTPS download MB/s" "$dl_o" "$dl_m" "mitmproxy, streamed" "$(ratio "$dl_o" "$dl_m")" "-"
row "RSS per idle intercepted TLS flow" "${idle}KiB" "64KiB" "the goal" "$(ratio "$idle" 64)" "<= 1"
mb_stop
MB_PIDS=""
echo "# $(tail -1 "$MB/proxy.out" 2>/dev/null)"
