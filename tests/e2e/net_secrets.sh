#!/bin/bash
# net_secrets: secrets that never enter the VM, in the fake internet (tests/lib/networld.sh
# with its TLS servers; every server logs each request's Authorization, so what arrived - and
# that nothing did - is proven where it lands). One Debian guest, kept (--rm=false) so its
# state dir can be searched afterwards:
#   --secret TOKEN=<value>@echo.test (inline), --secret GIT_TOKEN@echo.test (from matchlock's
#   environment), --secret '"MULTI=<value>@echo.test,web.test"' (a CSV-quoted multi-host list)
# The guest sees placeholders only; the value is substituted into a Bearer header over HTTPS
# and plain HTTP, into the query, and inside Basic credentials (git clone over HTTPS with the
# token in the URL); the placeholder sent to another host is refused (403) and that server's
# log proves nothing arrived; no value is in the guest's environment, matchlock's output, the
# VM log or egress.jsonl.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit debian
world_tls_up || { fail "the TLS servers of the test world come up"; done_testing; exit 1; }
VALUE=tok-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
MULTI=multi-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
H2V=h2-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
ML_ENV="SSL_CERT_FILE=$W_TLS_CA GIT_TOKEN=$W_GIT_TOKEN MATCHLOCK_LOG=debug"

mlw_bg run --image "$DEB_IMG" --rm=false --allow-host web.test --secret "TOKEN=$VALUE@echo.test" \
	--secret GIT_TOKEN@echo.test --secret "\"MULTI=$MULTI@echo.test,web.test\"" \
	--secret "H2KEY=$H2V@api.example.test" -- sh -c "$GUEST_LIB
T env 5 sh -c \"echo TOKEN=\$TOKEN; env | grep -c -e $VALUE -e $W_GIT_TOKEN -e $MULTI || true\"
T bearer 20 curl -sS -o /dev/null -w %{http_code} -H \"Authorization: Bearer \$TOKEN\" https://echo.test/bearer
T plain 20 curl -sS -o /dev/null -w %{http_code} -H \"Authorization: Bearer \$TOKEN\" http://echo.test/plain
T query 20 curl -sS -o /dev/null -w %{http_code} \"https://echo.test/anything?key=\$TOKEN&x=1\"
T clone 60 git clone -q https://x:\$GIT_TOKEN@echo.test/git/repo.git /tmp/repo
T readme 5 cat /tmp/repo/README
T multi 20 curl -sS -o /dev/null -w %{http_code} -H \"Authorization: Bearer \$MULTI\" https://web.test/multi
T other 20 curl -sS -i -H \"Authorization: Bearer \$TOKEN\" https://web.test/secret-probe
T other_query 20 curl -sS -i \"http://web.test/secret-probe-q?k=\$TOKEN\"
T other_clone 30 git clone -q https://x:\$GIT_TOKEN@web.test/git/repo.git /tmp/repo2
T h2 20 curl -sS --http2 -o /dev/null -w %{http_version} -H \"Authorization: Bearer \$H2KEY\" https://api.example.test/
echo @DONE" >"$T_TMP/out" 2>"$T_TMP/err"
for _ in $(seq 1 300); do grep -q '^@DONE' "$T_TMP/out" && break; kill -0 "$ML_PID" 2>/dev/null || break; sleep 0.5; done
VMDIR=$(ls -d "$ML_HOME"/.matchlock/vms/vm-* 2>/dev/null | head -1)
kill -TERM "$ML_PID" 2>/dev/null; wait "$ML_PID"
out=$(cat "$T_TMP/out")
check_contains "the guest ran every probe" "@DONE" "$out"
check_g_ok "the guest's TOKEN is a placeholder" "$out" env "TOKEN=SANDBOX_SECRET_"
check_g_ok "no secret value anywhere in the guest's environment" "$out" env "|0|"
check_g_ok "HTTPS Bearer: 404 from the server (the page does not exist; the request arrived)" "$out" bearer 404
check_contains "HTTPS Bearer: the server received the value" "GET /bearer host=echo.test auth=Bearer $VALUE" "$(cat "$W_DIR/web-echo.log")"
check_contains "plain HTTP: the server received the value" "GET /plain host=echo.test auth=Bearer $VALUE" "$(cat "$W_DIR/web-echoplain.log")"
check_contains "query: the server received the value" "GET /anything?key=$VALUE&x=1" "$(cat "$W_DIR/web-echo.log")"
check_g_ok "git clone over HTTPS with the token as Basic password" "$out" readme "hello from git"
check_contains "git: the server received the token inside Basic credentials" "auth=basic:x:$W_GIT_TOKEN" "$(cat "$W_DIR/web-echo.log")"
check_contains "a CSV-quoted multi-host secret reaches its second host" "GET /multi host=web.test auth=Bearer $MULTI" "$(cat "$W_DIR/web-web.log")"
check_contains "a header placeholder sent to another host: 403" "403 Forbidden" "$(g_line "$out" other)"
check_contains "the 403 says why" "secret placeholder sent to unauthorized host" "$(g_line "$out" other)"
check_contains "a query placeholder sent to another host: 403" "403 Forbidden" "$(g_line "$out" other_query)"
check_g_denied "git clone of another host with the token refused" "$out" other_clone 30
check_g_ok "a secret over HTTP/2" "$out" h2 "2"
check_contains "HTTP/2: the server received the value" "GET / HTTP/2.0 auth=Bearer $H2V" "$(cat "$W_DIR/nginx-access.log")"
check_eq "the other host's server received nothing with the placeholder" 0 "$(web_count web secret-probe)"
# git asks without credentials first; the retry with the Basic credentials is the one refused
check_eq "the other host's server received no git request with credentials" 0 "$(web_count web 'git.*auth=basic')"
check_eq "no server received a placeholder of a secret not meant for it" 0 "$(grep -c 'SANDBOX_SECRET_' "$W_DIR"/web-web.log)"
leaks=$(grep -rl -e "$VALUE" -e "$W_GIT_TOKEN" -e "$MULTI" -e "$H2V" "$T_TMP/out" "$T_TMP/err" "$VMDIR" 2>/dev/null | tr '\n' ' ')
check_eq "no value in the guest's output, matchlock's stderr (debug logging), the VM log, egress.jsonl or the VM record" "" "$leaks"
check_contains "egress.jsonl lists the secret's name" '"secrets":["TOKEN"]' "$(cat "$VMDIR/egress.jsonl" 2>/dev/null)"
check_contains "egress.jsonl records the refusal" '"reason":"secret placeholder sent to unauthorized host"' "$(cat "$VMDIR/egress.jsonl" 2>/dev/null)"
check_no_qemu_left "no VM left"
done_testing
