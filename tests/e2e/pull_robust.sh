#!/bin/bash
# pull_robust: `kill -9` in the middle of a pull (a 100 MB layer behind a slow loopback proxy)
# leaves the store consistent and the next pull succeeds; two pulls of the same image at once
# both succeed and the registry serves each blob once; a full disk is a clear error and leaves a
# store that still works.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"

reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
H=$REG HPORT=${REG#*:} HLOG=$REG_LOG
mkimage big big || fail "build the 100 MB image"
reg_push "$T_TMP/img-big" latest "$H" big:1 || fail "push the 100 MB image"
want=$(reg_manifest_digest "$H" big:1)
bigblob=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$H/v2/big/manifests/1" |
	python3 -c 'import json,sys; print(max(json.load(sys.stdin)["layers"], key=lambda l: l["size"])["digest"])')
# 40 MB/s through the proxy: the big layer takes ~2.5 s.
PPORT=$(free_port)
reg_helper "$T_TMP/proxy.out" proxy "$PPORT" "$HPORT" $((40 << 20)) "$T_TMP/proxy.count" || fail "slow proxy starts"
chmod 0777 "$T_TMP"
P=127.0.0.1:$PPORT

# store_consistent CACHE: how many blob files are not what their name says (blobs are kept as
# the registry sent them, named by their digest), temp files included.
store_consistent() {
	bad=0
	for f in "$1"/matchlock/images/blobs/*; do
		[ -f "$f" ] || continue
		hex=$(basename "$f" | sed 's/^sha256_//; s/\..*//')
		case "$f" in *.tmp*) bad=$((bad + 1)); continue ;; esac
		[ "$(sha256sum "$f" | cut -c1-64)" = "$hex" ] || bad=$((bad + 1))
	done
	echo "$bad"
}

# --- kill -9 in the middle of the download ---
private_cache cache-kill
ml_bg pull "$P/big:1" >"$T_TMP/kill.out" 2>&1
for _ in $(seq 1 200); do
	n=$(cat "$T_TMP/proxy.count" 2>/dev/null || echo 0)
	[ "$n" -gt $((30 << 20)) ] && break
	sleep 0.05
done
if kill -0 "$ML_PID" 2>/dev/null; then
	kill -9 "$ML_PID"; wait "$ML_PID" 2>/dev/null
	ok "kill -9 landed during the download ($(( $(cat "$T_TMP/proxy.count") >> 20 )) MB sent)"
else
	wait "$ML_PID"; fail "the pull ended before kill -9 ($(cat "$T_TMP/kill.out"))"
fi
check_not_contains "after kill -9: no tag for the image" "big:1" "$(ml image ls 2>&1)"
check_eq "after kill -9: no partial blob visible as complete" 0 "$(store_consistent "$ML_CACHE")"
out=$(ml pull "$P/big:1" 2>"$T_TMP/e"); rc=$?
check_eq "after kill -9: the next pull succeeds" 0 "$rc"
check_contains "after kill -9: Digest right" "Digest: $want" "$out"
check_eq "after the second pull: store consistent" 0 "$(store_consistent "$ML_CACHE")"
if [ -z "$(find "$ML_CACHE/matchlock/images" -name '*.tmp*' 2>/dev/null)" ]; then ok "after the second pull: no temp files"; else fail "temp files left after the second pull: $(find "$ML_CACHE/matchlock/images" -name '*.tmp*')"; fi

# --- two pulls at once: both succeed, each blob served once ---
private_cache cache-two
lines=$(wc -l <"$HLOG")
ml_bg pull "$P/big:1" >"$T_TMP/p1.out" 2>&1; p1=$ML_PID
ml_bg pull "$P/big:1" >"$T_TMP/p2.out" 2>&1; p2=$ML_PID
wait "$p1"; r1=$?
wait "$p2"; r2=$?
check_eq "concurrent pull 1: exit 0" 0 "$r1"
check_eq "concurrent pull 2: exit 0" 0 "$r2"
check_contains "concurrent pull 1: Digest" "Digest: $want" "$(cat "$T_TMP/p1.out")"
check_contains "concurrent pull 2: Digest" "Digest: $want" "$(cat "$T_TMP/p2.out")"
tail -n +"$((lines + 1))" "$HLOG" >"$T_TMP/two.log"
check_eq "concurrent pulls: the 100 MB layer was downloaded once" 1 "$(reg_blob_gets "$T_TMP/two.log" "$bigblob")"
for d in $(grep -o 'GET /v2/big/blobs/sha256:[0-9a-f]*' "$T_TMP/two.log" | sort -u | sed 's/.*blobs\///'); do
	n=$(reg_blob_gets "$T_TMP/two.log" "$d")
	[ "$n" = 1 ] || fail "concurrent pulls: blob $d downloaded $n times"
done
ok "concurrent pulls: checked every blob's GET count"
check_eq "concurrent pulls: store consistent" 0 "$(store_consistent "$ML_CACHE")"

# --- full disk: a 40 MB tmpfs for a 100 MB image ---
mkdir -p "$T_TMP/full"
if mount -t tmpfs -o size=40m,mode=0700,uid="$(id -u "$ML_USER")",gid="$(id -g "$ML_USER")" tmpfs "$T_TMP/full"; then
	ML_CACHE=$T_TMP/full
	ml pull "$H/big:1" >/dev/null 2>"$T_TMP/e"; rc=$?
	check_fails "full disk" "no space|space|disk|full|ENOSPC" "$T_TMP/e" "$rc"
	check_not_contains "full disk: no tag" "big:1" "$(ml image ls 2>&1)"
	left=$(find "$T_TMP/full" -name '*.tmp*' 2>/dev/null | wc -l)
	check_eq "full disk: temp files removed" 0 "$left"
	check_eq "full disk: store consistent" 0 "$(store_consistent "$ML_CACHE")"
	ml image ls >/dev/null 2>&1; rc=$?
	check_eq "full disk: the store still answers image ls" 0 "$rc"
	umount "$T_TMP/full"
else
	fail "full disk: cannot mount a tmpfs"
fi
done_testing
