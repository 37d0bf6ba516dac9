#!/bin/bash
# vfs_posix: the POSIX behaviours real tools need, in a host_fs workspace of a real VM (Debian
# bookworm image, python3 as the probe: tests/lib/vfs_posix.py, one line per check): create,
# unlink, mkdir, rmdir, O_EXCL/O_TRUNC/O_APPEND, rename over a file, of directories,
# RENAME_NOREPLACE, symlinks, hard links, chmod/chown, truncate, utime, fsync, an unlinked open
# file, shared writable mmap, xattrs, offsets past 4 GiB, a directory of 100k entries, 2000
# small files, and rename-over atomicity under concurrent readers. Then the host's side of it.
. "$(dirname "$0")/../lib/harness.sh"
layout=$(sh "$REPO/tests/lib/mkdebian.sh" 2>"$T_TMP/deb.err") || { fail "build the Debian image: $(cat "$T_TMP/deb.err")"; done_testing; exit 1; }
tar -C "$layout" -cf "$T_TMP/deb.tar" . && chmod 0644 "$T_TMP/deb.tar"
ml image import vfs/debian:1 "$T_TMP/deb.tar" >/dev/null 2>"$T_TMP/e" || { fail "import the Debian image: $(cat "$T_TMP/e")"; done_testing; exit 1; }
IMG=vfs/debian:1

W=$T_TMP/ws
mkdir -p "$W/many"
(cd "$W/many" && seq -f 'f%g' 0 99999 | xargs touch)
cp "$REPO/tests/lib/vfs_posix.py" "$W/probe.py"
chown -R "$ML_USER:$ML_USER" "$W"

ml run --image $IMG --timeout 500 --memory 1024 --workspace /workspace -v "$W:/workspace:host_fs" \
	-- python3 /workspace/probe.py /workspace >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
check_eq "the probe runs to the end (exit 0)" 0 "$rc"
check_contains "the probe printed DONE" DONE "$(cat "$T_TMP/out")"
n=0
while read -r word rest; do
	case $word in
	OK) ok "$rest"; n=$((n + 1)) ;;
	FAIL) fail "$rest"; n=$((n + 1)) ;;
	esac
done <"$T_TMP/out"
[ "$n" -ge 36 ] && ok "the probe made $n checks" || fail "the probe made $n checks, wanted at least 36 (stderr: $(tail -5 "$T_TMP/err"))"

# what the host sees afterwards
check_eq "host: the renamed tree" nested "$(cat "$W/dst/sub/deep/f" 2>&1)"
check_eq "host: the appended file" "one two three" "$(cat "$W/ap" 2>&1)"
check_eq "host: the hard link is a hard link" 2 "$(stat -c %h "$W/old" 2>&1)"
check_eq "host: the symlink is a symlink" "dst/sub/deep/f" "$(readlink "$W/ln" 2>&1)"
check_eq "host: the mmap write" "mmap!" "$(dd if="$W/mm" bs=1 skip=4096 count=5 2>/dev/null)"
check_eq "host: 2000 small files" 2000 "$(find "$W/tree" -type f | wc -l)"
check_eq "host: no set-uid bit on the host file" 0 "$(( $(stat -c '%#a' "$W/a") & 07000 ))"
check_eq "host: files belong to the user" "$ML_USER" "$(stat -c %U "$W/tree/d00/f00")"
check_no_qemu_left "no VM left"
done_testing
