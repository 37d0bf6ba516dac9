#!/bin/bash
# pull_tls: HTTPS registries. A registry whose certificate comes from a test CA works when the CA
# is given with SSL_CERT_FILE and is refused (certificate not trusted) without it; a registry
# with htpasswd auth and a token-less Basic challenge gives a 401 error without credentials or
# with wrong ones, and works with ~/.docker/config.json "auths"; the password never shows.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache

reg_start https || { fail "HTTPS registry starts"; done_testing; exit 1; }
S=localhost:${REG#*:}
reg_start auth || { fail "auth registry starts"; done_testing; exit 1; }
A=$REG
reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
HPORT=${REG#*:}
mkimage config cfg || fail "build test image"
ltag=$(default_layout "$T_TMP/def")
reg_push "$T_TMP/def" "$ltag" "$S" busybox:latest && reg_push "$T_TMP/img-cfg" latest "$S" app/cfg:1 &&
	reg_push "$T_TMP/def" "$ltag" "$A" private/busybox:latest --dest-creds "$REG_USER:$REG_PASS" &&
	reg_push "$T_TMP/def" "$ltag" "$REG" busybox:latest || fail "push test images"
want=$(reg_manifest_digest "$S" busybox:latest)
want_a=$(reg_manifest_digest "$A" private/busybox:latest -u "$REG_USER:$REG_PASS")
check_contains "auth registry serves the manifest with credentials" "sha256:" "$want_a"
ml pull "$REG/busybox:latest" >/dev/null 2>&1 || fail "a good pull first (plain HTTP)"
before=$(store_listing "$ML_CACHE")

# --- HTTPS with the test CA ---
ml pull "$S/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "HTTPS without the test CA" "certificate|verif|trust|issuer" "$T_TMP/e" "$rc"
check_eq "HTTPS without the test CA: store untouched" "$before" "$(store_listing "$ML_CACHE")"
ML_ENV="SSL_CERT_FILE=/nonexistent/ca.pem" ml pull "$S/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "HTTPS with a missing SSL_CERT_FILE: exit 1" 1 "$rc"
out=$(ML_ENV="SSL_CERT_FILE=$REG_CA" ml pull "$S/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "HTTPS with SSL_CERT_FILE=test CA: exit 0" 0 "$rc"
check_contains "HTTPS: Digest is the registry's" "Digest: $want" "$out"
out=$(ML_ENV="SSL_CERT_FILE=$REG_CA" ml run --image "$S/app/cfg:1" 2>"$T_TMP/e"); rc=$?
check_eq "run --image over HTTPS pulls and runs" "entry:from-cmd" "$out"

# Plain HTTP is fine for a registry named localhost.
out=$(ml pull "localhost:$HPORT/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "plain HTTP to localhost:PORT: exit 0" 0 "$rc"

# --- Basic auth ---
ML_AUTH_ENV="SSL_CERT_FILE=$REG_CA"
before=$(store_listing "$ML_CACHE")
ML_ENV=$ML_AUTH_ENV ml pull "$A/private/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "auth registry without credentials" "401|unauthori[sz]ed|authenticat|credential" "$T_TMP/e" "$rc"
check_eq "401: store untouched" "$before" "$(store_listing "$ML_CACHE")"
mkdir -p "$ML_HOME/.docker"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$A" "$(printf '%s:wrong' "$REG_USER" | base64)" >"$ML_HOME/.docker/config.json"
chown -R "$ML_USER:$ML_USER" "$ML_HOME/.docker" && chmod 0600 "$ML_HOME/.docker/config.json"
ML_ENV=$ML_AUTH_ENV ml pull "$A/private/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "auth registry with a wrong password" "401|unauthori[sz]ed|authenticat|credential" "$T_TMP/e" "$rc"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$A" "$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64)" >"$ML_HOME/.docker/config.json"
out=$(ML_ENV=$ML_AUTH_ENV ml pull "$A/private/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "auth registry with ~/.docker/config.json: exit 0" 0 "$rc"
check_contains "auth registry: Digest is the registry's" "Digest: $want_a" "$out"
check_not_contains "the password is never printed" "$REG_PASS" "$out$(cat "$T_TMP/e")"
out=$(ML_ENV=$ML_AUTH_ENV ml run --pull --image "$A/private/busybox:latest" -- echo from-auth 2>"$T_TMP/e"); rc=$?
check_eq "run --pull from the auth registry" "from-auth" "$out"
check_not_contains "run: the password is never printed" "$REG_PASS" "$(cat "$T_TMP/e")"
check_no_qemu_left "no VM left"
done_testing
