#!/bin/bash
# pull_basic: `pull` from a plain-HTTP registry on loopback (OCI and Docker schema2 manifests, by
# tag and by digest), content-addressed blobs (a second tag or a -t alias adds nothing on disk,
# --force keeps the usage stable), a cached image is reused without asking the registry, the
# reference rules, and `image ls/rm/gc`. No VM boots here (pull_run.sh runs pulled images).
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache
BLOBS=$ML_CACHE/matchlock/images/blobs

reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
H=$REG HLOG=$REG_LOG
ltag=$(default_layout "$T_TMP/def")
reg_push "$T_TMP/def" "$ltag" "$H" busybox:latest && reg_push "$T_TMP/def" "$ltag" "$H" busybox:1.36 &&
	reg_push "$T_TMP/def" "$ltag" "$H" team/tools/bb-v2s2:1 --format v2s2 || fail "push test images"
want=$(reg_manifest_digest "$H" busybox:latest)
want_v2=$(reg_manifest_digest "$H" team/tools/bb-v2s2:1)
check_contains "registry serves the OCI manifest" "sha256:" "$want"

# --- pull by tag ---
ml pull >/dev/null 2>"$T_TMP/e"; rc=$?
if [ "$rc" != 0 ]; then ok "pull without an image fails (exit $rc)"; else fail "pull without an image succeeded"; fi
out=$(ml pull "$H/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "pull by tag: exit 0" 0 "$rc"
check_eq "pull: first line" "Pulling $H/busybox:latest..." "$(echo "$out" | head -1)"
check_eq "pull: Digest is the registry's manifest digest" "Digest: $want" "$(echo "$out" | grep '^Digest:')"
if echo "$out" | grep -qE '^Size: [0-9]+\.[0-9] MB$'; then ok "pull: Size line"; else fail "pull: no 'Size: n.n MB' line in [$out]"; fi
if printf '%s' "$out$(cat "$T_TMP/e")" | grep -q $'[\r\x1b]'; then fail "pull: progress escapes without a TTY"; else ok "pull: line-oriented output without a TTY"; fi
used1=$(blob_usage "$BLOBS")
if [ "$used1" -gt 0 ]; then ok "pull: blobs on disk ($used1 bytes)"; else fail "pull: no blobs in $BLOBS"; fi
if [ -z "$(find "$ML_CACHE/matchlock/images" -name '*.tmp*' 2>/dev/null)" ]; then ok "pull: no temp files left"; else fail "pull: temp files left"; fi

# --- cached image reused, --force asks again, usage stable ---
n0=$(grep -c 'GET /v2/busybox/manifests/' "$HLOG")
out=$(ml pull "$H/busybox:latest" 2>/dev/null); rc=$?
check_eq "second pull: exit 0" 0 "$rc"
check_contains "second pull: same digest" "Digest: $want" "$out"
check_eq "second pull: served from the cache (no manifest GET)" "$n0" "$(grep -c 'GET /v2/busybox/manifests/' "$HLOG")"
out=$(ml pull --force "$H/busybox:latest" 2>/dev/null); rc=$?
check_eq "pull --force: exit 0" 0 "$rc"
n1=$(grep -c -E '(GET|HEAD) /v2/busybox/manifests/' "$HLOG")
if [ "$n1" -gt "$n0" ]; then ok "pull --force asks the registry again"; else fail "pull --force did not contact the registry"; fi
check_eq "pull --force: usage stable (1)" "$used1" "$(blob_usage "$BLOBS")"
ml pull --force "$H/busybox:latest" >/dev/null 2>&1
check_eq "pull --force: usage stable (2)" "$used1" "$(blob_usage "$BLOBS")"

# --- same content under another tag, by digest, and a -t alias: no new blob files ---
out=$(ml pull "$H/busybox:1.36" 2>&1); rc=$?
check_eq "pull of a second tag: exit 0" 0 "$rc"
check_eq "second tag of the same image adds nothing on disk" "$used1" "$(blob_usage "$BLOBS")"
out=$(ml pull "$H/busybox@$want" 2>"$T_TMP/e"); rc=$?
check_eq "pull by digest: exit 0" 0 "$rc"
check_contains "pull by digest: Digest line" "Digest: $want" "$out"
check_eq "pull by digest adds nothing on disk" "$used1" "$(blob_usage "$BLOBS")"
files1=$(find "$BLOBS" -type f | wc -l)
out=$(ml pull -t test/alias:1 "$H/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "pull -t: exit 0" 0 "$rc"
check_contains "pull -t: Tagged line" "Tagged: test/alias:1" "$out"
check_eq "pull -t: on-disk blob usage identical" "$used1" "$(blob_usage "$BLOBS")"
check_eq "pull -t: no new blob files" "$files1" "$(find "$BLOBS" -type f | wc -l)"
out=$(ml pull --tag test/alias:2 "$H/busybox:latest" 2>&1); rc=$?
check_eq "pull --tag (long form): exit 0" 0 "$rc"

# --- Docker schema2 manifest, repository with a path ---
out=$(ml pull "$H/team/tools/bb-v2s2:1" 2>"$T_TMP/e"); rc=$?
check_eq "schema2 manifest: exit 0" 0 "$rc"
check_contains "schema2 manifest: Digest is the registry's" "Digest: $want_v2" "$out"

# --- image ls ---
out=$(ml image ls 2>"$T_TMP/e"); rc=$?
check_eq "image ls: exit 0" 0 "$rc"
hdr=$(echo "$out" | head -1)
for col in TAG SOURCE SIZE CREATED; do check_contains "image ls: header has $col" "$col" "$hdr"; done
row=$(echo "$out" | grep -F "$H/busybox:latest " | head -1)
check_contains "image ls: pulled image listed" "$H/busybox:latest" "$row"
check_contains "image ls: pulled image's SOURCE is registry" "registry" "$row"
if echo "$row" | grep -qE ' [0-9]+\.[0-9] MB +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$'; then ok "image ls: SIZE and CREATED formats"; else fail "image ls: row format [$row]"; fi
la=$(echo "$out" | grep -n 'test/alias:1' | cut -d: -f1 | head -1)
lr=$(echo "$out" | grep -n "$H/busybox:latest" | cut -d: -f1 | head -1)
if [ -n "$la" ] && [ -n "$lr" ] && [ "$la" -lt "$lr" ]; then ok "image ls: local tags before registry images"; else fail "image ls: order (alias line $la, registry line $lr)"; fi
out=$(ml image list 2>&1); rc=$?
check_eq "image list (alias): exit 0" 0 "$rc"

# --- image rm, gc ---
out=$(ml image rm "$H/busybox:latest" 2>"$T_TMP/e"); rc=$?
check_eq "image rm: exit 0" 0 "$rc"
check_eq "image rm: message" "Removed $H/busybox:latest" "$out"
check_not_contains "image rm: gone from image ls" "$H/busybox:latest " "$(ml image ls)"
check_contains "image rm: other tags kept" "test/alias:1" "$(ml image ls)"
ml image rm "$H/busybox:latest" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "second image rm: exit 1" 1 "$rc"
check_eq "second image rm: message" "image not found: \"$H/busybox:latest\"" "$(cat "$T_TMP/e")"
ml image rm >/dev/null 2>&1; rc=$?
if [ "$rc" != 0 ]; then ok "image rm without a tag fails"; else fail "image rm without a tag succeeded"; fi
for t in test/alias:1 test/alias:2 "$H/busybox:1.36" "$H/busybox@$want" "$H/team/tools/bb-v2s2:1"; do
	ml image rm "$t" >/dev/null 2>&1
done
out=$(ml image ls 2>&1)
check_not_contains "every pulled tag removed" "$H/" "$out"
out=$(ml image gc 2>"$T_TMP/e"); rc=$?
check_eq "image gc: exit 0" 0 "$rc"
if echo "$out" | grep -qE '^Removed [0-9]+ unreferenced blobs'; then ok "image gc: 'Removed <n> unreferenced blobs'"; else fail "image gc: output [$out]"; fi
imgs=$(ml image ls 2>/dev/null | tail -n +2 | grep -c .)
left=$(find "$BLOBS" -type f 2>/dev/null | wc -l)
if [ "$imgs" != 0 ]; then ok "image gc: other images still in the store ($imgs), blob count not checked"
else check_eq "image gc: no blob file left once no image refers to it" 0 "$left"; fi
out=$(ml image gc 2>&1)
check_contains "image gc again: nothing to remove" "Removed 0 unreferenced blobs" "$out"
out=$(ml pull "$H/busybox:latest" 2>&1); rc=$?
check_eq "pull after rm + gc works again" 0 "$rc"

# --- malformed references: one line, exit 1, nothing written ---
before=$(store_listing "$ML_CACHE")
bad_ref() {
	ml pull "$1" >/dev/null 2>"$T_TMP/e"; rc=$?
	check_fails "malformed ref [$1]" "$2" "$T_TMP/e" "$rc"
}
bad_ref "$H/BusyBox:latest" "reference|invalid|uppercase"
bad_ref "$H/busybox:" "reference|invalid|tag"
bad_ref "$H/busybox@sha256:1234" "reference|invalid|digest"
bad_ref "busy box" "reference|invalid"
bad_ref "$H/busybox:bad!tag" "reference|invalid|tag"
check_eq "malformed refs leave the store untouched" "$before" "$(store_listing "$ML_CACHE")"
done_testing
