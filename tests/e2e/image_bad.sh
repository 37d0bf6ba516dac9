#!/bin/bash
# image_bad: hostile or broken images and a broken host set-up each give one clear line and a
# non-zero exit; nothing is written outside the image being built.
. "$(dirname "$0")/../lib/harness.sh"
BASE=$ML_PREFIX/lib/matchlock/images/default.tar
# A store of its own: the leftover-temp-file check below must not see other tests' imports.
ML_CACHE=$T_TMP/cache
mkdir -p "$ML_CACHE" && chown "$ML_USER:$ML_USER" "$ML_CACHE"

bad_import() {
	desc=$1 want=$2 file=$3
	chmod 0644 "$file"
	ml image import "test/bad:1" "$file" >/dev/null 2>"$T_TMP/e"; rc=$?
	check_eq "$desc: exit 1" 1 "$rc"
	check_contains "$desc: message" "$want" "$(grep -v '^Importing' "$T_TMP/e")"
	grep -v '^Importing' "$T_TMP/e" >"$T_TMP/e1"
	check_one_line "$desc: one line" "$T_TMP/e1"
}
printf 'this is not a tar archive at all' >"$T_TMP/junk.tar"
bad_import "not an archive" "invalid image archive" "$T_TMP/junk.tar"
tar -cf "$T_TMP/empty.tar" -T /dev/null
bad_import "archive without an image" "invalid image archive" "$T_TMP/empty.tar"
head -c 20000 "$BASE" >"$T_TMP/cut.tar"
bad_import "truncated archive" "invalid image archive" "$T_TMP/cut.tar"
# flip one byte inside the layer blob: its digest no longer matches
cp "$BASE" "$T_TMP/flip.tar"
python3 - "$T_TMP/flip.tar" <<'P'
import sys, tarfile
p = sys.argv[1]
with tarfile.open(p) as t:
    m = max((m for m in t.getmembers() if m.isfile()), key=lambda m: m.size)
    off = m.offset_data + m.size // 2
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
P
bad_import "blob digest mismatch" "digest" "$T_TMP/flip.tar"
check_not_contains "a failed import sets no tag" "test/bad:1" "$(ml image ls 2>&1)"

# bad_layer SCENARIO WANT: the image imports, but building its rootfs refuses the layer
bad_layer() {
	python3 "$REPO/tests/lib/mkimage.py" "$1" "$BASE" "$T_TMP/$1.tar"
	chmod 0644 "$T_TMP/$1.tar"
	ml image import "test/$1:1" "$T_TMP/$1.tar" >/dev/null 2>&1
	ml run --image "test/$1:1" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
	check_eq "$1: run fails" 1 "$rc"
	check_contains "$1: clear message" "$2" "$(cat "$T_TMP/e")"
	check_one_line "$1: one line" "$T_TMP/e"
}
bad_layer traversal "building rootfs"
bad_layer hardlink-outside "building rootfs"
bad_layer truncated "building rootfs"
if [ ! -e /tmp/escape ] && [ ! -e "$ML_TEST_ROOT/escape" ]; then ok "nothing written outside the image"; else fail "a layer wrote outside the image"; fi
leftover=$(find "$ML_CACHE/matchlock/images" -name '*.tmp*' 2>/dev/null | wc -l)
check_eq "no temp files left in the store" 0 "$leftover"

# Host without the kernel: the error names the set-up step.
mkdir -p "$T_TMP/nodata" && cp -r "$ML_PREFIX/lib/matchlock/agent" "$ML_PREFIX/lib/matchlock/images" "$T_TMP/nodata/"
chmod -R a+rX "$T_TMP/nodata"
ML_ENV="MATCHLOCK_DATA_DIR=$T_TMP/nodata" ml run --image $ML_DEFAULT_IMAGE -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "no kernel: exit 1" 1 "$rc"
check_contains "no kernel: names the set-up step" "scripts/setup.sh" "$(cat "$T_TMP/e")"
check_one_line "no kernel: one line" "$T_TMP/e"

# A guest that never answers: the boot timeout ends it, with the console's tail.
cp /bin/busybox "$T_TMP/fake-agent" && chmod 0755 "$T_TMP/fake-agent"
s=$(date +%s)
ML_ENV="MATCHLOCK_GUEST_AGENT=$T_TMP/fake-agent MATCHLOCK_BOOT_TIMEOUT=8" ml run --image $ML_DEFAULT_IMAGE -- true >/dev/null 2>"$T_TMP/e"; rc=$?
el=$(( $(date +%s) - s ))
check_eq "silent guest: exit 1" 1 "$rc"
check_contains "silent guest: boot timeout" "did not answer within the boot timeout (8s)" "$(cat "$T_TMP/e")"
check_contains "silent guest: console tail shown" "last console output" "$(cat "$T_TMP/e")"
if [ "$el" -lt 40 ]; then ok "silent guest: gave up in ${el}s"; else fail "silent guest took ${el}s"; fi
check_no_qemu_left "no VM left"
done_testing
