#!/bin/bash
# disk: `run --disk host_path:guest_mount[:ro]` with the user's own image files (made by mkfs,
# not by us): read-write disks keep what the guest wrote; read-only ones refuse writes in the
# guest (EROFS, a read-only block device) and stay byte-identical; bad input is refused with
# one line before any VM starts and nothing is written to it; a disk a running sandbox uses is
# refused, naming that VM; a filesystem the guest cannot mount fails with one line; a disk
# removed while its VM runs ends nothing early and hangs nothing.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

mkimg() { # mkimg FILE SIZE: an ext4 image as mkfs makes it, owned by the user
	mkfs.ext4 -q -F "$1" "$2" >/dev/null && chown "$ML_USER:$ML_USER" "$1"
}
err() { # err DESC WANT_LINE CMD...: exit 1, that one line on stderr, and no VM booted
	desc=$1 want=$2; shift 2
	s=$(date +%s%N)
	"$@" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
	ms=$(( ($(date +%s%N) - s) / 1000000 ))
	check_eq "$desc: exit 1" 1 "$rc"
	check_eq "$desc: message" "$want" "$(cat "$T_TMP/e")"
	if [ "$ms" -lt 2000 ]; then ok "$desc: refused before any boot (${ms} ms; a boot takes longer)"; else fail "$desc: took ${ms} ms"; fi
}
sum() { sha256sum "$1" | cut -d' ' -f1; }

# ---- read-write: the guest's writes land in the file ----
mkimg "$T_TMP/host.img" 64M
out=$(ml run --image $IMG --no-network --disk "$T_TMP/host.img:/mnt/data/deep" -- sh -c 'echo hello > /mnt/data/deep/f && mount | grep " /mnt/data/deep "'); rc=$?
check_eq "rw disk: exit 0" 0 "$rc"
check_contains "rw disk: mounted ext4 read-write at a mount point it created" "on /mnt/data/deep type ext4 (rw" "$out"
check_eq "rw disk: the host file holds the guest's write" "hello" "$(debugfs -R 'cat /f' "$T_TMP/host.img" 2>/dev/null)"
out=$(cd "$T_TMP" && ml run --image $IMG --no-network --disk host.img:/d -- cat /d/f)
check_eq "a relative host path is taken from the current directory" "hello" "$out"

# ---- read-only: refused in the guest, untouched on the host ----
before=$(sum "$T_TMP/host.img")
# a second read-only sandbox shares the disk with this one
ml_bg run --image $IMG --no-network --disk "$T_TMP/host.img:/shared:ro" -- sh -c 'sleep 6; cat /shared/f' >"$T_TMP/share.out" 2>"$T_TMP/share.err"
share_pid=$ML_PID
wait_guest_running || fail "the sharing sandbox did not start: $(cat "$T_TMP/share.err")"
out=$(ml run --image $IMG --no-network --privileged --disk "$T_TMP/host.img:/ro:ro" -- sh -c '
	cat /ro/f; echo x > /ro/g; touch /ro/f; mount | grep " /ro "
	for b in /sys/block/vd*; do [ "$(cat $b/serial)" = disk0 ] && echo "blockdev-ro=$(cat $b/ro)"; done
	mount -o remount,rw /ro 2>/dev/null && echo REMOUNTED-RW || echo remount-refused' 2>&1)
check_contains "ro disk: readable" "hello" "$out"
check_contains "ro disk: writes fail with EROFS" "Read-only file system" "$out"
check_contains "ro disk: mounted read-only" "on /ro type ext4 (ro" "$out"
check_contains "ro disk: the block device itself is read-only (the engine's readonly=on)" "blockdev-ro=1" "$out"
check_contains "ro disk: even a privileged guest cannot remount it read-write" "remount-refused" "$out"
wait "$share_pid"; rc=$?
check_eq "ro disk: two read-only sandboxes share it" "0 hello" "$rc $(cat "$T_TMP/share.out")"
check_eq "ro disk: the image is byte-identical afterwards" "$before" "$(sum "$T_TMP/host.img")"

# ---- bad input: one line, nothing booted, nothing written ----
head -c 1048576 /dev/urandom >"$T_TMP/random.img"; chown "$ML_USER:$ML_USER" "$T_TMP/random.img"
before=$(sum "$T_TMP/random.img")
ml run --image $IMG --no-network --disk "$T_TMP/random.img:/a" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "not ext4: exit 1" 1 "$rc"
check_eq "not ext4: says so" "invalid disk mount \"$T_TMP/random.img:/a\": $T_TMP/random.img is not an ext4 filesystem (Bad magic number in super-block)" "$(cat "$T_TMP/e")"
check_eq "not ext4: nothing written to it" "$before" "$(sum "$T_TMP/random.img")"
mkimg "$T_TMP/cut.img" 64M && truncate -s 16M "$T_TMP/cut.img"
before=$(sum "$T_TMP/cut.img")
ml run --image $IMG --no-network --disk "$T_TMP/cut.img:/a" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "truncated image: exit 1" 1 "$rc"
check_contains "truncated image: called corrupt" "is a corrupt ext4 filesystem (it claims 67108864 bytes, the file has 16777216: truncated?)" "$(cat "$T_TMP/e")"
check_one_line "truncated image: one line" "$T_TMP/e"
check_eq "truncated image: nothing written to it" "$before" "$(sum "$T_TMP/cut.img")"
err "a directory" "invalid disk mount \"$T_TMP:/a\": host path is a directory, not a disk image: $T_TMP (use --volume to share a directory)" \
	ml run --image $IMG --disk "$T_TMP:/a" -- true
err "a missing file" "invalid disk mount \"$T_TMP/none.img:/a\": host path does not exist: $T_TMP/none.img" \
	ml run --image $IMG --disk "$T_TMP/none.img:/a" -- true
err "no guest mount" "invalid disk mount \"$T_TMP/host.img\": expected format host_path:guest_mount[:ro] or @volume_name:guest_mount[:ro]" \
	ml run --image $IMG --disk "$T_TMP/host.img" -- true
err "empty parts" "invalid disk mount \":/a\": host_path and guest_mount are required" \
	ml run --image $IMG --disk ":/a" -- true
err "bad option" "invalid disk mount \"$T_TMP/host.img:/a:rw\": unknown disk option \"rw\" (use \"ro\")" \
	ml run --image $IMG --disk "$T_TMP/host.img:/a:rw" -- true
err "relative guest mount" "invalid disk mount \"$T_TMP/host.img:a\": invalid guest mount path \"a\": must be absolute and contain only alphanumeric, '/', '_', '.', '-'" \
	ml run --image $IMG --disk "$T_TMP/host.img:a" -- true
err "guest mount with .." "invalid disk mount \"$T_TMP/host.img:/a/../etc\": invalid guest mount path \"/a/../etc\": must not contain \".\" or \"..\" components" \
	ml run --image $IMG --disk "$T_TMP/host.img:/a/../etc" -- true
err "unknown volume" "invalid disk mount \"@nope$$:/a\": named volume not found: nope$$" \
	ml run --image $IMG --disk "@nope$$:/a" -- true
mkimg "$T_TMP/other.img" 16M
err "one mount point twice" "guest mount \"/a\" is used by two disks" \
	ml run --image $IMG --disk "$T_TMP/host.img:/a:ro,$T_TMP/other.img:/a" -- true
err "one file twice" "disk $T_TMP/host.img is attached twice" \
	ml run --image $IMG --disk "$T_TMP/host.img:/a:ro" --disk "$T_TMP/host.img:/b:ro" -- true
many=""; for i in $(seq 0 16); do many="$many,$T_TMP/host.img:/m$i:ro"; done
err "17 disks" "too many disks: 17 (at most 16)" ml run --image $IMG --disk "${many#,}" -- true

chmod 0444 "$T_TMP/other.img"
err "a file the user cannot write, read-write" "invalid disk mount \"$T_TMP/other.img:/a\": host path is not readable and writable by this user: $T_TMP/other.img (attach it read-only with :ro)" \
	ml run --image $IMG --disk "$T_TMP/other.img:/a" -- true

# ---- a filesystem the host accepts but the guest kernel refuses: one line from the guest ----
mkimg "$T_TMP/nojournal.img" 32M
debugfs -w -R "sif <8> mode 0" "$T_TMP/nojournal.img" >/dev/null 2>&1
ml run --image $IMG --no-network --disk "$T_TMP/nojournal.img:/a" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "unmountable disk: exit 1" 1 "$rc"
check_eq "unmountable disk: the guest's reason, one line" "guest setup failed: disk on /a: mount ext4: Invalid argument (EXT4-fs (vdc): no journal found)" "$(cat "$T_TMP/e")"

# ---- in use by a running sandbox; removed while its VM runs ----
mkimg "$T_TMP/busy.img" 64M
ml_bg run --image $IMG --no-network --disk "$T_TMP/busy.img:/d" -- sh -c 'echo before > /d/f; sleep 8; echo after >> /d/f && cat /d/f' >"$T_TMP/bg.out" 2>"$T_TMP/bg.err"
if wait_guest_running; then ok "a sandbox holding busy.img runs"; else fail "the holding sandbox did not start: $(cat "$T_TMP/bg.err")"; fi
vm=$(ls "$ML_HOME/.matchlock/vms" | head -1)
ml run --image $IMG --no-network --disk "$T_TMP/busy.img:/d" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "in use: a second sandbox is refused" 1 "$rc"
check_eq "in use: names the VM holding it" "attaching disks: disk $T_TMP/busy.img is in use by VM $vm" "$(cat "$T_TMP/e")"
as_user rm "$T_TMP/busy.img"
s=$(date +%s)
wait "$ML_PID"; rc=$?
el=$(( $(date +%s) - s ))
check_eq "removed while running: the sandbox ends normally" 0 "$rc"
check_eq "removed while running: the VM kept its open file" $'before\nafter' "$(cat "$T_TMP/bg.out")"
if [ "$el" -lt 30 ]; then ok "removed while running: no hang (${el}s)"; else fail "removed while running: took ${el}s"; fi
check_no_qemu_left "no VM left"
done_testing
