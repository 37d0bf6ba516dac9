#!/bin/bash
# image_bigdir: big directories are built as indexed (htree) directories the guest kernel
# agrees with. 20,000 files in one directory (short names, names with bytes >= 0x80, whose hash
# depends on the declared signedness, and 200-character names) and 66,000 subdirectories in
# another; a second layer whites out a third of them. In the guest every name left is listed
# and found by name (a lookup walks our index), the whited-out ones are gone, and the
# directory with 65,000 subdirectories has the link count 1 that means "many".
. "$(dirname "$0")/../lib/harness.sh"
BASE=$ML_PREFIX/lib/matchlock/images/default.tar

python3 "$REPO/tests/lib/mkimage.py" bigdir "$BASE" "$T_TMP/bd.tar" "$T_TMP/expect"
chmod 0644 "$T_TMP/bd.tar" "$T_TMP/expect"
start=$(date +%s)
ml image import test/bigdir:1 "$T_TMP/bd.tar" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "import the big-directory image" 0 "$rc"
want_n=$(wc -l <"$T_TMP/expect")
want_sum=$(LC_ALL=C sort "$T_TMP/expect" | sha256sum | cut -c1-64)
# One guest command: the listing (readdir of an indexed directory; printf, as busybox ls shows
# bytes >= 0x80 as "?"), then stat of every listed
# name (a lookup by hash), errors counted; then the whited-out and the many-subdirectory checks.
out=$(ml run --image test/bigdir:1 -- sh -c '
cd /bd
echo "count $(printf "%s\n" * | wc -l)"
echo "sum $(printf "%s\n" * | LC_ALL=C sort | sha256sum | cut -c1-64)"
echo "found $(stat -c %s -- * 2>/dev/null | wc -l)"
echo "content $(cat f-00002 "$(printf "\303\251t\303\251-00001")" "$(printf %0200d 19)" | tr "\n" " ")"
for n in f-00000 "$(printf "\303\251t\303\251-00003")" "$(printf %0200d 9)"; do [ -e "$n" ] && echo "still there: $n"; done
echo "many $(ls /many | wc -l) links $(stat -c %h /many)"
[ -d /many/d65999 ] && echo "d65999 found"
[ -e /many/d7 ] || echo "d7 gone"
' 2>"$T_TMP/e"); rc=$?
secs=$(( $(date +%s) - start ))
check_eq "the guest command ran" 0 "$rc"
check_contains "every name left is listed" "count $want_n" "$out"
check_contains "the listing is exactly the names left" "sum $want_sum" "$out"
check_contains "every listed name is found by a lookup" "found $want_n" "$out"
check_contains "files found by name hold their data" "content 2 1 19 " "$out"
check_not_contains "whited-out names are gone" "still there" "$out"
check_contains "65,000 subdirectories, link count 1" "many 65000 links 1" "$out"
check_contains "a subdirectory is found by name" "d65999 found" "$out"
check_contains "a whited-out subdirectory is gone" "d7 gone" "$out"
if [ "$secs" -lt 240 ]; then ok "import, build and run within 240 s ($secs s)"; else fail "import, build and run took $secs s, wanted under 240"; fi
[ "$rc" = 0 ] || cat "$T_TMP/e"
check_no_qemu_left "no VM left"
done_testing
