#!/bin/bash
# pull_auth: the registry auth flow end to end and the plain-HTTP rule for named hosts.
# A token proxy (regtools.py tokenproxy) fronts a plain-HTTP registry with Bearer auth: pull
# follows the WWW-Authenticate challenge to the token service with the user's docker config
# credentials, asks for the repository's pull scope, and sends the token on manifest and blob
# requests; no or wrong credentials give one 401 line and never show the password; an
# anonymous token service needs no config. A registry reached by a non-loopback name (mapped
# to 127.0.0.1 in a private /etc/hosts) is not spoken to over plain HTTP unless
# $MATCHLOCK_INSECURE_REGISTRIES lists it (host:port or the bare host). No VM boots here.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache-creds

reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
UP=$REG UPORT=${REG#*:}
ltag=$(default_layout "$T_TMP/def")
reg_push "$T_TMP/def" "$ltag" "$UP" private/busybox:latest && reg_push "$T_TMP/def" "$ltag" "$UP" busybox:latest ||
	fail "push test images"
want=$(reg_manifest_digest "$UP" private/busybox:latest)
check_contains "upstream serves the manifest" "sha256:" "$want"

TUSER=tok-user TPASS=Tok3n-pass-XyZ WRONG=wr0ng-pass-QqQ
P=$(free_port) PLOG=$T_TMP/tokenproxy.log
reg_helper "$T_TMP/tp.out" tokenproxy "$P" "$UPORT" "$PLOG" "$TUSER:$TPASS" || fail "token proxy starts"
T=127.0.0.1:$P
# log_count JQ-LIKE-REGEX: lines of the proxy log matching an extended regex
log_count() { grep -cE "$1" "$PLOG" 2>/dev/null || true; }

# The proxy itself: unauthenticated -> 401 with the challenge; a token is bound to its scope.
hdr=$(curl -s -o /dev/null -D - "http://$T/v2/private/busybox/manifests/latest" | tr -d '\r')
check_contains "proxy: 401 without a token" "401" "$(echo "$hdr" | head -1)"
check_contains "proxy: Bearer challenge with scope" \
	"WWW-Authenticate: Bearer realm=\"http://$T/token\",service=\"test-registry\",scope=\"repository:private/busybox:pull\"" "$hdr"
tok=$(curl -s -u "$TUSER:$TPASS" "http://$T/token?service=test-registry&scope=repository:busybox:pull" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
ACC='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$ACC" -H "Authorization: Bearer $tok" "http://$T/v2/busybox/manifests/latest")
check_eq "proxy: token for its own scope accepted" 200 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$ACC" -H "Authorization: Bearer $tok" "http://$T/v2/private/busybox/manifests/latest")
check_eq "proxy: token for another scope refused" 401 "$code"
: >"$PLOG"

# --- no credentials: the token service refuses ---
ml pull "$T/private/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "bearer registry without credentials" "401|unauthori[sz]ed" "$T_TMP/e" "$rc"
echo "# bearer registry without credentials: $(head -c 300 "$T_TMP/e.only")"
check_eq "no credentials: token service asked anonymously" 1 "$(log_count '"path": "/token".*"basic": "none"')"

# --- wrong password ---
mkdir -p "$ML_HOME/.docker"
write_auth() {
	printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$1" "$(printf '%s' "$2" | base64)" >"$ML_HOME/.docker/config.json"
	chown -R "$ML_USER:$ML_USER" "$ML_HOME/.docker" && chmod 0600 "$ML_HOME/.docker/config.json"
}
write_auth "$T" "$TUSER:$WRONG"
ml pull "$T/private/busybox:latest" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_fails "bearer registry with a wrong password" "401|unauthori[sz]ed" "$T_TMP/e" "$rc"
echo "# bearer registry with a wrong password: $(head -c 300 "$T_TMP/e.only")"
check_not_contains "wrong password: never printed" "$WRONG" "$(cat "$T_TMP/o" "$T_TMP/e")"
check_eq "wrong password: sent to the token service" 1 "$(log_count '"path": "/token".*"basic": "bad"')"
check_eq "failed pulls leave no blob in the store" 0 "$(find "$ML_CACHE/matchlock/images/blobs" -type f 2>/dev/null | wc -l)"

# --- right credentials ---
write_auth "$T" "$TUSER:$TPASS"
: >"$PLOG"
out=$(ml pull "$T/private/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "bearer registry with ~/.docker/config.json: exit 0" 0 "$rc"
check_contains "bearer pull: Digest is the registry's" "Digest: $want" "$out"
check_not_contains "bearer pull: password never printed" "$TPASS" "$out$(cat "$T_TMP/e")"
check_eq "token asked with service and the repository's pull scope, with the credentials" 1 \
	"$(log_count '"path": "/token", "service": "test-registry", "scope": "repository:private/busybox:pull", "basic": "ok"')"
check_eq "no token asked for any other scope" 0 "$(grep '"/token"' "$PLOG" | grep -vc 'repository:private/busybox:pull' || true)"
nm=$(log_count '/manifests/.*"token": "valid"')
nb=$(log_count '/blobs/sha256:.*"token": "valid"')
if [ "$nm" -ge 1 ]; then ok "manifest request carried the Bearer token ($nm)"; else fail "no manifest request with a valid token: $(cat "$PLOG")"; fi
if [ "$nb" -ge 2 ]; then ok "blob requests carried the Bearer token ($nb)"; else fail "blob requests with a valid token: $nb: $(cat "$PLOG")"; fi
check_eq "no request with a wrong-scope token" 0 "$(log_count '"token": "wrong"')"
check_eq "at most one unauthenticated request before the token (the probe)" 1 "$(log_count '"token": "none"')"

# --- anonymous token service: no docker config at all ---
rm -rf "$ML_HOME/.docker"
private_cache cache-anon
A=$(free_port) ALOG=$T_TMP/anon.log
reg_helper "$T_TMP/ta.out" tokenproxy "$A" "$UPORT" "$ALOG" --anonymous || fail "anonymous token proxy starts"
out=$(ml pull "127.0.0.1:$A/private/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "anonymous token service without a config: exit 0" 0 "$rc"
check_contains "anonymous: Digest is the registry's" "Digest: $want" "$out"
check_eq "anonymous: token asked without credentials for the pull scope" 1 \
	"$(grep -cE '"path": "/token".*"scope": "repository:private/busybox:pull", "basic": "none"' "$ALOG" || true)"
nb=$(grep -cE '/blobs/sha256:.*"token": "valid"' "$ALOG" || true)
if [ "$nb" -ge 2 ]; then ok "anonymous: blob requests carried the token ($nb)"; else fail "anonymous: blob requests with a token: $nb"; fi

# --- plain HTTP to a non-loopback name ---
private_cache cache-insecure
HOSTS=$T_TMP/hosts
printf '127.0.0.1 localhost\n127.0.0.1 insecure-reg.test\n' >"$HOSTS" && chmod 0644 "$HOSTS"
N=insecure-reg.test:$UPORT
want_bb=$(reg_manifest_digest "$UP" busybox:latest)
n0=$(grep -c 'GET /v2/busybox/manifests/' "$REG_LOG")
ml_with_hosts "$HOSTS" pull "$N/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "plain HTTP registry by name, not listed" "MATCHLOCK_INSECURE_REGISTRIES" "$T_TMP/e" "$rc"
echo "# plain HTTP registry by name, not listed: $(head -c 300 "$T_TMP/e.only")"
check_eq "not listed: no plain HTTP request reached the registry" "$n0" "$(grep -c 'GET /v2/busybox/manifests/' "$REG_LOG")"
ML_ENV="MATCHLOCK_INSECURE_REGISTRIES=insecure-reg.test:1" ml_with_hosts "$HOSTS" pull "$N/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "listed with another port" "MATCHLOCK_INSECURE_REGISTRIES" "$T_TMP/e" "$rc"
echo "# listed with another port: $(head -c 300 "$T_TMP/e.only")"
out=$(ML_ENV="MATCHLOCK_INSECURE_REGISTRIES=other.test,$N" ml_with_hosts "$HOSTS" pull "$N/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "listed as host:port: exit 0" 0 "$rc"
check_contains "listed as host:port: Digest is the registry's" "Digest: $want_bb" "$out"
out=$(ML_ENV="MATCHLOCK_INSECURE_REGISTRIES=insecure-reg.test" ml_with_hosts "$HOSTS" pull --force "$N/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "listed as a bare host (every port): exit 0" 0 "$rc"
check_contains "listed as a bare host: Digest is the registry's" "Digest: $want_bb" "$out"
done_testing
