#!/bin/bash
# vfs_mounts: `run --workspace W -v host:guest[:opt]` in real VMs. Every -v message of the
# reference; host_fs writes reach the host; ro refuses writes (EROFS) and the host is unchanged;
# overlay (the default) leaves the host tree byte-identical and its snapshot goes with the VM;
# nested mount points get their parents synthesized; single-file mounts show in `ls`; relative
# guest paths land under the workspace; `-u 1000` creates files in a host_fs workspace; an
# unreadable host directory is one clear line before anything starts.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE
H=$T_TMP/host
mkdir -p "$H/proj/sub" "$H/nested" "$H/multi"
echo mounted-nested-path >"$H/nested/probe.txt"
echo mounted-multi-level-path >"$H/multi/TEST.md"
echo single-file-mounted >"$H/1file.txt"
echo original >"$H/proj/keep.txt"
printf 'x%.0s' $(seq 1 5000) >"$H/proj/sub/big.txt"
ln -s keep.txt "$H/proj/link"
chown -R "$ML_USER:$ML_USER" "$H"

# ---- the reference's messages (all before anything is created) ----
err_of() { ml run --image $IMG "$@" -- true >/dev/null 2>"$T_TMP/e"; echo "rc=$? $(cat "$T_TMP/e")"; }
out=$(err_of -v "$H/proj:/workspace")
check_eq "-v without --workspace" "rc=1 --workspace is required when using --volume" "$out"
out=$(err_of --workspace /workspace/project -v "$H/proj:/workspace")
check_contains "guest path outside the workspace: invalid volume mount" "invalid volume mount" "$out"
check_contains "guest path outside the workspace: must be within workspace" \
	"guest path must be within workspace: \"/workspace\" not in \"/workspace/project\"" "$out"
out=$(err_of --workspace /workspace -v "$H/nope:/workspace")
check_eq "host path that does not exist" \
	"rc=1 invalid volume mount \"$H/nope:/workspace\": host path does not exist: $H/nope" "$out"
out=$(err_of --workspace /workspace -v "$H/proj:/workspace:rw")
check_eq "unknown option" \
	"rc=1 invalid volume mount \"$H/proj:/workspace:rw\": unknown option \"rw\" (use 'ro', 'overlay', or 'host_fs')" "$out"
out=$(err_of --workspace /workspace -v "justone")
check_eq "one part only" \
	"rc=1 invalid volume mount \"justone\": expected format host:guest or host:guest:ro" "$out"
out=$(err_of --workspace /workspace)
check_eq "--workspace without a mount (the create rule)" \
	"rc=1 invalid configuration: vfs.workspace requires at least one vfs.mounts entry" "$out"
out=$(err_of --workspace '/work space' -v "$H/proj:/work space")
check_contains "bad workspace path" "invalid configuration: vfs.workspace: invalid guest mount path" "$out"
mkdir -p "$H/locked" && chown "$ML_USER" "$H/locked" && chmod 000 "$H/locked"
ml run --image $IMG --workspace /workspace -v "$H/locked:/workspace" -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "unreadable host dir: exit 1" 1 "$rc"
check_one_line "unreadable host dir: one line" "$T_TMP/e"
check_contains "unreadable host dir: says why" "host path is not readable: $H/locked: Permission denied" "$(cat "$T_TMP/e")"
left=$(ls "$ML_HOME/.matchlock/vms" 2>/dev/null | wc -l)
check_eq "no VM was created for a bad spec" 0 "$left"

# ---- nested path, multi-level relative ro path, single-file mount (the acceptance checks) ----
out=$(ml run --image $IMG -v "$H/nested:/workspace/not_exist_folder" --workspace /workspace \
	cat /workspace/not_exist_folder/probe.txt 2>"$T_TMP/e")
check_eq "mount at a path whose parent does not exist" mounted-nested-path "$out"
out=$(ml run --image $IMG -v "$H/multi:.host/example:ro" --workspace /workspace -- \
	sh -c 'cd /workspace/.host && cat example/TEST.md' 2>"$T_TMP/e")
check_eq "relative guest path under the workspace (ro)" mounted-multi-level-path "$out"
out=$(ml run --image $IMG -v "$H/1file.txt:/workspace/1file.txt" --workspace /workspace -- \
	sh -c 'ls /workspace && cat /workspace/1file.txt' 2>"$T_TMP/e")
check_contains "single-file mount: ls shows it" "1file.txt" "$out"
check_contains "single-file mount: its content" "single-file-mounted" "$out"

# ---- host_fs: live, both ways ----
out=$(ml run --image $IMG --workspace /workspace -v "$H/proj:/workspace:host_fs" -- sh -c \
	'cat /workspace/keep.txt; echo from-guest > /workspace/new.txt; mkdir /workspace/d; echo x > /workspace/d/f;
	 readlink /workspace/link' 2>"$T_TMP/e"); rc=$?
check_eq "host_fs run exits 0" 0 "$rc"
check_eq "host_fs: guest reads the host file" original "$(echo "$out" | sed -n 1p)"
check_eq "host_fs: a symlink reads back" keep.txt "$(echo "$out" | sed -n 2p)"
check_eq "host_fs: guest write reaches the host" from-guest "$(cat "$H/proj/new.txt" 2>&1)"
check_eq "host_fs: guest mkdir reaches the host" x "$(cat "$H/proj/d/f" 2>&1)"
check_eq "host_fs: host files stay the user's" "$ML_USER" "$(stat -c %U "$H/proj/new.txt")"
rm -rf "$H/proj/new.txt" "$H/proj/d"

# an image without WORKDIR (most public ones): the workspace is the working directory
python3 "$REPO/tests/lib/mkimage.py" noworkdir "$ML_PREFIX/lib/matchlock/images/default.tar" "$T_TMP/nowd.tar"
chmod 0644 "$T_TMP/nowd.tar"
ml image import vfs/noworkdir:1 "$T_TMP/nowd.tar" >/dev/null 2>"$T_TMP/e" || fail "import the image without WORKDIR: $(cat "$T_TMP/e")"
out=$(ml run --image vfs/noworkdir:1 --workspace /workspace -v "$H/proj:/workspace:ro" -- pwd 2>"$T_TMP/e")
check_eq "no WORKDIR: the workspace is the working directory" /workspace "$out"
out=$(ml run --image vfs/noworkdir:1 -- pwd 2>"$T_TMP/e")
check_eq "no WORKDIR and no workspace: /" / "$out"

# ---- -u 1000: a non-root user creates files in a host_fs workspace ----
out=$(ml run --image $IMG -u 1000 --workspace /workspace -v "$H/proj:/workspace:host_fs" -- sh -c \
	'id -u; touch /workspace/by1000 && echo created; mkdir /workspace/d1000 && echo dir; stat -c "%u" /workspace/by1000' 2>"$T_TMP/e")
check_eq "-u 1000: runs as 1000" 1000 "$(echo "$out" | sed -n 1p)"
check_eq "-u 1000: can create a file" created "$(echo "$out" | sed -n 2p)"
check_eq "-u 1000: can create a directory" dir "$(echo "$out" | sed -n 3p)"
check_eq "-u 1000: the file is 1000's in the guest" 1000 "$(echo "$out" | sed -n 4p)"
check_eq "-u 1000: the file exists on the host" yes "$([ -f "$H/proj/by1000" ] && echo yes)"
rm -rf "$H/proj/by1000" "$H/proj/d1000"

# ---- ro: EROFS in the guest, never a host write ----
before=$(cd "$H" && find proj -printf '%p %s %m %T@\n' | sort | sha256sum)
out=$(ml run --image $IMG --workspace /workspace -v "$H/proj:/workspace:ro" -- sh -c \
	'echo x > /workspace/keep.txt; echo "w=$?"; touch /workspace/n 2>&1; rm /workspace/keep.txt 2>&1; chmod 777 /workspace/keep.txt 2>&1; cat /workspace/keep.txt' 2>&1)
check_contains "ro: writing fails with a read-only file system" "Read-only file system" "$out"
check_contains "ro: the write's status is non-zero" "w=1" "$out"
check_contains "ro: reading works" original "$out"
after=$(cd "$H" && find proj -printf '%p %s %m %T@\n' | sort | sha256sum)
check_eq "ro: the host tree is unchanged (names, sizes, modes, mtimes)" "$before" "$after"

# ---- overlay (the default): the guest changes its copy; the host stays byte-identical ----
sum() { (cd "$H/proj" && find . -printf '%p %y %s %m %T@\n' | sort && find . -type f -exec sha256sum {} + | sort) | sha256sum; }
before=$(sum)
ML_ENV="MATCHLOCK_LOG=info" ml_bg run --image $IMG --rm=false --workspace /workspace -v "$H/proj:/workspace" -- sh -c \
	'echo changed > /workspace/keep.txt; rm /workspace/sub/big.txt; mkdir /workspace/made; echo y > /workspace/made/f;
	 mv /workspace/link /workspace/link2; chmod 600 /workspace/keep.txt; cat /workspace/keep.txt' >"$T_TMP/o" 2>"$T_TMP/e"
for _ in $(seq 1 240); do grep -q changed "$T_TMP/o" && break; sleep 0.25; done
check_eq "overlay: the guest sees its own changes" changed "$(cat "$T_TMP/o")"
vm=$(ls "$ML_HOME/.matchlock/vms" | head -1)
snap=$ML_HOME/.matchlock/vms/$vm/overlay/mount-000
check_eq "overlay: the snapshot lives in the VM's state dir" changed "$(cat "$snap/keep.txt" 2>&1)"
kill -TERM "$ML_PID"; wait "$ML_PID"
check_eq "overlay: the host tree is byte-identical" "$before" "$(sum)"
check_eq "overlay: the snapshot is removed with the VM" gone "$([ -e "$snap" ] || echo gone)"
check_contains "overlay: the copy's cost is logged" "vfs: overlay /workspace: copied" "$(cat "$ML_HOME"/.matchlock/vms/"$vm"/logs/vm.log)"

# ---- a supervisor killed with SIGKILL leaves its overlay copy; gc removes it ----
rm -rf "$ML_HOME/.matchlock/vms"
ml_bg run --image $IMG --rm=false --workspace /workspace -v "$H/proj:/workspace" -- true >/dev/null 2>"$T_TMP/ke"
for _ in $(seq 1 240); do grep -q "is running" "$T_TMP/ke" && break; sleep 0.25; done
kill -KILL "$ML_PID"; wait "$ML_PID" 2>/dev/null
vm=$(ls "$ML_HOME/.matchlock/vms" | head -1)
check_eq "killed run: its overlay copy is left behind" yes "$([ -d "$ML_HOME/.matchlock/vms/$vm/overlay/mount-000" ] && echo yes)"
sleep 1
out=$(ml gc 2>&1)
check_contains "gc removes a crashed run's overlay copy" "overlay_snapshot_remove" "$out"
check_eq "gc: the copy is gone" gone "$([ -e "$ML_HOME/.matchlock/vms/$vm/overlay" ] || echo gone)"
check_no_qemu_left "no VM left"
done_testing
