#!/bin/bash
# net_intercept: HTTP and HTTPS interception in the fake internet (tests/lib/networld.sh with
# its TLS servers): real clients in real guests, the policy by the name the guest asked for.
#   Debian image, --allow-host web.test,*.example.test,echo.test,other.test,private.test
#     curl (OpenSSL) over HTTP and HTTPS through the proxy; curl, Debian's wget (GnuTLS) and
#     git's trust without the CA variables (the CA was appended to the system bundle); Python
#     urllib; the CA file and the four variables in the guest; by-name denials: the apex of a
#     wildcard (403 "Blocked by policy"), a name not listed over HTTPS (closed after the
#     handshake) - names not in the list do not resolve in the guest (DNS is filtered), so
#     those probes give curl the address (--resolve) and the proxy sees the name in the Host
#     header or the SNI -, a listed name that resolves to a private address (403); an upstream whose
#     certificate names another host (502 with the reason); SSE events as they come (first
#     event latency); WebSocket echo over HTTP and HTTPS; HTTP/2 both ways with an HTTP/2
#     upstream (nginx: 8 MiB, two streams at once, :authority vs SNI -> 421) and HTTP/1.1 with
#     an HTTP/1.1-only one; every decision in egress.jsonl; the denied servers' logs show
#     nothing arrived.
#   default image (busybox), same list: busybox wget's own TLS (TLS 1.2, SHA-1) through the proxy
#   --network-intercept with no list: every public host goes through the proxy
#   no list, no flag: TCP/443 relayed as before, no CA in the guest
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
world_tls_up || { fail "the TLS servers of the test world come up"; done_testing; exit 1; }
IMG=$ML_DEFAULT_IMAGE
ALLOW='web.test,*.example.test,echo.test,other.test,private.test'
TW=/tmp/tw.py
ML_ENV="SSL_CERT_FILE=$W_TLS_CA"

# --- Debian guest, kept (--rm=false) so its egress.jsonl can be read afterwards
mlw_bg run --image "$DEB_IMG" --rm=false --allow-host "$ALLOW" -- sh -c "$GUEST_LIB
echo $(base64 -w0 "$REPO/tests/lib/tlsworld.py") | base64 -d >$TW
T http 20 curl -sS http://web.test/
T https 20 curl -sS https://web.test/
T https_api 20 curl -sS https://www.example.test/
T vars 5 sh -c \"echo \$SSL_CERT_FILE \$REQUESTS_CA_BUNDLE \$CURL_CA_BUNDLE \$NODE_EXTRA_CA_CERTS\"
T cafile 5 sh -c \"head -1 /etc/ssl/certs/matchlock-ca.crt; grep -c BEGIN /etc/ssl/certs/ca-certificates.crt\"
T curl_sys 20 env -u SSL_CERT_FILE -u CURL_CA_BUNDLE curl -sS https://web.test/
T wget_deb 20 env -u SSL_CERT_FILE wget -q -O - https://web.test/
T git_sys 20 env -u SSL_CERT_FILE -u CURL_CA_BUNDLE git ls-remote https://web.test/nothing.git
T python 20 python3 $TW get https://web.test/
T apex 20 curl -sS -i --resolve example.test:80:198.51.100.40 http://example.test/
T apex_tls 20 curl -sS --resolve example.test:443:198.51.100.40 https://example.test/
T unlisted_tls 20 curl -sS --resolve dnsserver.test:443:198.51.100.40 https://dnsserver.test/
T private 20 curl -sS -i http://private.test/
T badcert 20 curl -sS -i https://other.test/
T plain_other 20 curl -sS http://other.test/
T sse 20 python3 $TW sse https://echo.test/sse?count=3\&gap=1.5
T ws 20 python3 $TW ws echo.test 80 /ws hello-plain
T wss 20 python3 $TW ws echo.test 443 /ws hello-tls
T h2 20 curl -sS --http2 -o /dev/null -w %{http_version} https://api.example.test/
T h2big 60 sh -c \"curl -sS --http2 https://www.example.test/big.bin | sha256sum\"
T h2par 60 sh -c \"curl -s --http2 -Z -o /dev/null -o /dev/null -w %{http_version}%{http_code}. https://api.example.test/ https://api.example.test/big.bin 2>/dev/null\"
T h2mis 20 curl -sS --http2 -o /dev/null -w %{http_code} -H \"Host: web.test\" https://api.example.test/
T h1only 20 curl -sS --http2 -o /dev/null -w %{http_version} https://web.test/
echo @DONE" >"$T_TMP/deb.out" 2>"$T_TMP/deb.err"
for _ in $(seq 1 300); do grep -q '^@DONE' "$T_TMP/deb.out" && break; kill -0 "$ML_PID" 2>/dev/null || break; sleep 0.5; done
VMDIR=$(ls -d "$ML_HOME"/.matchlock/vms/vm-* 2>/dev/null | head -1)
cp "$VMDIR/egress.jsonl" "$T_TMP/egress.jsonl" 2>/dev/null
kill -TERM "$ML_PID" 2>/dev/null; wait "$ML_PID"
out=$(cat "$T_TMP/deb.out")
check_contains "the Debian guest ran every probe" "@DONE" "$out"
check_g_ok "curl over HTTP through the proxy" "$out" http "hello from web"
check_g_ok "curl over HTTPS through the TLS proxy (CURL_CA_BUNDLE)" "$out" https "hello from web"
check_g_ok "HTTPS to a *.example.test name" "$out" https_api "hello from api"
check_g_ok "the four CA variables name the CA file" "$out" vars \
	"/etc/ssl/certs/matchlock-ca.crt /etc/ssl/certs/matchlock-ca.crt /etc/ssl/certs/matchlock-ca.crt /etc/ssl/certs/matchlock-ca.crt"
check_g_ok "the CA file is in the guest" "$out" cafile "BEGIN CERTIFICATE"
check_g_ok "curl without the variables trusts the CA (system bundle)" "$out" curl_sys "hello from web"
check_g_ok "Debian's wget (GnuTLS) trusts the CA through the system bundle" "$out" wget_deb "hello from web"
check_contains "git (GnuTLS) reached the server through the system bundle" "nothing.git" "$(grep 'GET /nothing.git' "$W_DIR/web-web.log")"
check_g_ok "Python urllib over HTTPS" "$out" python "hello from web"
check_g_ok "the apex of *.example.test over HTTP: 403" "$out" apex "HTTP/1.1 403 Forbidden"
check_contains "the 403's body" "Blocked by policy" "$(g_line "$out" apex)"
check_g_denied "the apex of *.example.test over HTTPS: closed after the handshake" "$out" apex_tls 5
check_g_denied "an unlisted name over HTTPS: closed after the handshake" "$out" unlisted_tls 5
check_g_ok "a listed name that resolves to a private address: 403" "$out" private "HTTP/1.1 403 Forbidden"
check_eq "the private server saw no connection" 0 "$(rec_count private)"
check_contains "an upstream certificate for another name: 502" "502 Bad Gateway" "$(g_line "$out" badcert)"
check_contains "the 502 says why" "upstream certificate verification failed" "$(g_line "$out" badcert)"
check_eq "the bad upstream's server saw no request" 0 "$(web_count other)"
check_g_ok "other.test over plain HTTP still works" "$out" plain_other "hello from other"
sse=$(g_line "$out" sse)
check_contains "SSE: three events" 'data: {"id":2' "$sse"
t1=$(printf '%s' "$sse" | tr '|' '\n' | grep -m1 -o 't=[0-9.]*' | cut -d= -f2)
t2=$(printf '%s' "$sse" | tr '|' '\n' | grep -o 't=[0-9.]*' | sed -n 2p | cut -d= -f2)
if awk -v a="$t1" 'BEGIN {exit !(a + 0 < 1.2)}'; then ok "SSE: the first event arrives at once (${t1}s)"
else fail "SSE: the first event took ${t1}s (wanted < 1.2 s: events must not be held back)"; fi
if awk -v a="$t1" -v b="$t2" 'BEGIN {exit !(b - a > 1.0)}'; then ok "SSE: events arrive one by one, as sent (${t1}s, ${t2}s)"
else fail "SSE: events bunched (${t1}s, ${t2}s): the body was buffered"; fi
check_g_ok "WebSocket echo over HTTP" "$out" ws "ws-echo hello-plain"
check_g_ok "WebSocket echo over HTTPS" "$out" wss "ws-echo hello-tls"
check_g_ok "HTTP/2 both ways when the upstream speaks it (curl --http2)" "$out" h2 "2"
check_contains "the upstream saw HTTP/2 too" "HTTP/2.0" "$(cat "$W_DIR/nginx-access.log")"
check_g_ok "8 MiB over HTTP/2 hashes right" "$out" h2big "$W_H2_SHA"
check_g_ok "two HTTP/2 streams at once on one connection" "$out" h2par "2200.2200."
check_g_ok "HTTP/2: an :authority other than the SNI gets 421" "$out" h2mis "421"
check_g_ok "an HTTP/1.1-only upstream: the guest gets HTTP/1.1" "$out" h1only "1.1"
eg=$(cat "$T_TMP/egress.jsonl" 2>/dev/null)
check_contains "egress.jsonl: an allowed exchange" '"host":"web.test","method":"GET","path":"/","status":200,"blocked":false' "$eg"
check_contains "egress.jsonl: the apex refusal" '"host":"example.test","method":"GET","path":"/","status":403,"blocked":true,"reason":"host not in allowlist"' "$eg"
check_contains "egress.jsonl: the TLS refusal" '"host":"dnsserver.test","method":"","path":"","status":0,"blocked":true,"reason":"host not in allowlist"' "$eg"
check_contains "egress.jsonl: the private refusal" '"host":"private.test","method":"GET","path":"/","status":403,"blocked":true,"reason":"private address blocked"' "$eg"
check_contains "egress.jsonl: the 502 with its reason" '"host":"other.test","method":"GET","path":"/","status":502,"blocked":false,"reason":"upstream certificate verification failed' "$eg"

# --- busybox's own TLS (no openssl binary in the default image)
out=$(mlw run --image $IMG --allow-host "$ALLOW" -- sh -c "$GUEST_LIB
T bb_https 20 wget -q -O - https://web.test/
T bb_denied 20 wget -q -O - http://example.test/" 2>"$T_TMP/bb.err")
check_g_ok "busybox wget's built-in TLS 1.2 (SHA-1 signatures) through the proxy" "$out" bb_https "hello from web"
check_g_denied "busybox wget to a refused name" "$out" bb_denied 5

# --- --network-intercept, no list: every public host through the proxy
out=$(mlw run --image $IMG --network-intercept -- sh -c "$GUEST_LIB
T any 20 wget -q -O - https://web.test/
T bad 20 wget -q -O - https://other.test/" 2>"$T_TMP/ni.err")
check_g_ok "--network-intercept: a host through the TLS proxy" "$out" any "hello from web"
check_g_denied "--network-intercept: other.test's bad certificate refused" "$out" bad 5

# --- no interception: TCP/443 relayed, no CA
out=$(mlw run --image $IMG -- sh -c "$GUEST_LIB
T noca 5 sh -c \"test -e /etc/ssl/certs/matchlock-ca.crt && echo HAS-CA || echo NO-CA; echo vars=\$SSL_CERT_FILE\"" 2>"$T_TMP/none.err")
check_g_ok "without interception: no CA file, no variables" "$out" noca "NO-CA|vars=|"
check_no_qemu_left "no VM left"
done_testing
