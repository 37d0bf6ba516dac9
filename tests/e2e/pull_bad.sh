#!/bin/bash
# pull_bad: every bad input of a pull is one clear stderr line, exit 1, and the store untouched:
# unknown host, connection refused, 404 tag, a blob or manifest whose digest does not match, a
# truncated layer, an oversized manifest, an index without linux/amd64; a layer with path
# traversal or a decompression bomb fails the run cleanly; a malformed `docker save` tarball.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache
BASE=$ML_PREFIX/lib/matchlock/images/default.tar

reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
H=$REG HDIR=$REG_DIR
ltag=$(default_layout "$T_TMP/def")
mkimage multilayer ml && mkimage noamd64 noamd && mkimage traversal trav && mkimage bomb bomb &&
	mkimage truncated trunc || fail "build test images"
reg_push "$T_TMP/def" "$ltag" "$H" busybox:latest &&
	reg_push "$T_TMP/img-ml" latest "$H" corrupt:1 && reg_push "$T_TMP/img-ml" latest "$H" cut:1 &&
	reg_push "$T_TMP/img-ml" latest "$H" badman:1 &&
	reg_push "$T_TMP/img-noamd" latest "$H" noamd:1 --all && reg_push "$T_TMP/img-trav" latest "$H" trav:1 &&
	reg_push "$T_TMP/img-bomb" latest "$H" bomb:1 && reg_push "$T_TMP/img-trunc" latest "$H" trunc:1 ||
	fail "push test images"
# A first good pull, so "untouched" means a store with content in it.
ml pull "$H/busybox:latest" >/dev/null 2>&1 || fail "a good pull first"
before=$(store_listing "$ML_CACHE")

# bad_pull DESC REGEX REF [ML_ENV]: the pull fails cleanly and changes nothing.
bad_pull() {
	before=$(store_listing "$ML_CACHE")
	ML_ENV=${4:-} ml pull "$3" >/dev/null 2>"$T_TMP/e"; rc=$?
	check_fails "$1" "$2" "$T_TMP/e" "$rc"
	check_eq "$1: store untouched" "$before" "$(store_listing "$ML_CACHE")"
	check_not_contains "$1: no tag left" "$3" "$(ml image ls 2>&1)"
}

# Unknown host: matchlock in a network namespace of its own with only loopback, so the name
# lookup fails locally and nothing leaves the machine.
unshare --net -- setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
	env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" \
	"$ML_BIN" pull no-such-registry.invalid/team/app:1 >/dev/null 2>"$T_TMP/e"; rc=$?
check_fails "unknown host" "no-such-registry.invalid" "$T_TMP/e" "$rc"
check_eq "unknown host: store untouched" "$before" "$(store_listing "$ML_CACHE")"

closed=$(free_port)
bad_pull "connection refused" "refused|connect" "127.0.0.1:$closed/app:1"
bad_pull "404 tag" "not found|404|unknown|no such" "$H/busybox:no-such-tag"
bad_pull "404 repository" "not found|404|unknown|no such" "$H/no/such/repo:1"

# A layer blob overwritten in the registry's storage with other bytes of the same length: the
# registry still serves it under the old digest. (The image's own layer, not the busybox base
# layer the store already holds.)
layer=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$H/v2/corrupt/manifests/1" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][1]["digest"])')
f=$(reg_blob_file "$HDIR" "$layer")
if [ -f "$f" ]; then
	sz=$(stat -c %s "$f")
	cp "$f" "$T_TMP/layer.orig"
	head -c "$sz" /dev/urandom >"$f"
	bad_pull "corrupted blob" "digest" "$H/corrupt:1"
	# Truncated: the same blob cut to half its length.
	head -c $((sz / 2)) "$T_TMP/layer.orig" >"$f"
	bad_pull "truncated layer" "digest|size|short|truncat|incomplete|closed|partial" "$H/cut:1"
	cp "$T_TMP/layer.orig" "$f"
else
	fail "corrupted blob: registry blob file not found ($f)"
fi

# A manifest whose bytes changed (one space more: still valid JSON): by digest and by tag.
mdig=$(reg_manifest_digest "$H" badman:1)
mf=$(reg_blob_file "$HDIR" "$mdig")
python3 - "$mf" <<'P'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
i = b.index(b",")
open(p, "wb").write(b[:i] + b" " + b[i:])
P
bad_pull "manifest digest mismatch (pull by digest)" "digest" "$H/badman@$mdig"
bad_pull "manifest digest mismatch (pull by tag)" "digest" "$H/badman:1"

# An oversized manifest (64 MiB): capped, not read into memory.
hport=$(free_port)
reg_helper "$T_TMP/huge.out" huge "$hport" $((64 << 20)) || fail "huge-manifest server starts"
s=$(date +%s)
bad_pull "oversized manifest" "manifest|too large|size|limit" "127.0.0.1:$hport/huge:1"
el=$(( $(date +%s) - s ))
if [ "$el" -lt 20 ]; then ok "oversized manifest: refused in ${el}s"; else fail "oversized manifest took ${el}s"; fi

bad_pull "index without linux/amd64" "linux/amd64|amd64|platform" "$H/noamd:1"

# Layers that pull fine (their digests are right) but must not build a rootfs.
bad_run() {
	desc=$1 want=$2
	shift 2
	s=$(date +%s)
	timeout 300 setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" \
		"$ML_BIN" run "$@" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
	check_fails "$desc" "$want" "$T_TMP/e" "$rc"
	el=$(( $(date +%s) - s ))
	echo "# $desc: ${el}s"
}
bad_run "layer with path traversal" "building rootfs|path|\.\." --image "$H/trav:1"
if [ ! -e /tmp/escape ] && [ ! -e "$ML_TEST_ROOT/escape" ] && [ ! -e "$ML_CACHE/escape" ]; then
	ok "path traversal: nothing written outside the image"
else fail "path traversal: a layer wrote outside the image"; fi
bad_run "truncated gzip layer (right digest)" "building rootfs|truncat|unexpected|gzip|archive" --image "$H/trunc:1"
bad_run "decompression bomb (1 MiB -> 16 GiB)" "building rootfs|size|limit|large|space" --image "$H/bomb:1"
used=$(du -sm "$ML_CACHE" | cut -f1)
if [ "$used" -lt 200 ]; then ok "decompression bomb: nothing big left in the store (${used} MB)"; else fail "decompression bomb left ${used} MB in the store"; fi
leftover=$(find "$ML_CACHE/matchlock/images" -name '*.tmp*' 2>/dev/null | wc -l)
check_eq "no temp files left in the store" 0 "$leftover"

# Malformed `docker save` tarballs.
mkdir -p "$T_TMP/ds" && cd "$T_TMP/ds" || exit 1
echo '[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["missing/layer.tar"]}]' >manifest.json
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >cfg.json
tar -cf "$T_TMP/ds-missing.tar" manifest.json cfg.json
echo '[{"Config":' >manifest.json
tar -cf "$T_TMP/ds-json.tar" manifest.json cfg.json
cd "$T_TMP" || exit 1
chmod 0644 "$T_TMP"/ds-*.tar
for c in missing json; do
	ml image import test/ds:1 "$T_TMP/ds-$c.tar" >/dev/null 2>"$T_TMP/e"; rc=$?
	check_fails "malformed docker save ($c)" "invalid image archive|manifest|layer|json" "$T_TMP/e" "$rc"
done
check_not_contains "malformed docker save: no tag" "test/ds:1" "$(ml image ls 2>&1)"
check_no_qemu_left "no VM left"
done_testing
