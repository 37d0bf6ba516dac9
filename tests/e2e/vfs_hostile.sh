#!/bin/bash
# vfs_hostile: a guest that attacks its workspace from inside a real VM, and a host that pulls
# the workspace away. Symlinks planted on the host or by the guest never lead out of the mount
# (the guest kernel resolves them in the guest; the supervisor never follows one); a guest
# racing a directory against a symlink to "/" while writing through it writes nothing on the
# host outside the mount; device nodes are refused; a guest flooding the workspace with
# requests gets them served many at once and the supervisor still stops on SIGTERM at once;
# a host directory deleted mid-run fails the guest's requests, not the supervisor.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE
H=$T_TMP/h
mkdir -p "$H/ws/dir" "$H/outside"
echo TOPSECRET >"$H/outside/secret"
ln -s ../outside "$H/ws/esc"
ln -s "$H/outside" "$H/ws/abs"
echo inside >"$H/ws/dir/f"
chown -R "$ML_USER:$ML_USER" "$H"
chmod 0755 "$T_TMP"

cat >"$H/ws/attack.sh" <<'S'
cd /workspace
echo "esc=$(cat esc/secret 2>&1)"
echo "abs=$(cat abs/secret 2>&1)"
ln -s / root && echo "root-link=$(ls root/ | head -3 | tr '\n' ,)"
ln -s ../../../../../../../.. up && echo pwned > up/tmp/pwned-by-guest 2>/dev/null; echo "up-write=$?"
echo "hardlink=$(ln /etc/passwd pw 2>/dev/null; echo $?)"
echo "mknod=$(mknod dev c 1 3 2>/dev/null; echo $?)"
echo "dotdot=$(cat dir/../../../../etc/hostname >/dev/null 2>&1; echo $?)"
# the race: d is a directory when the kernel looks it up and a symlink to / when the host
# is asked to write into it; nothing may be written through the symlink
( end=$(( $(date +%s) + 6 )); while [ "$(date +%s)" -lt "$end" ]; do
	rm -rf d; mkdir d; rmdir d; ln -s ../../../../../../../../../.. d; rm -f d; done ) &
( end=$(( $(date +%s) + 6 )); while [ "$(date +%s)" -lt "$end" ]; do
	echo pwned > d/pwned-race 2>/dev/null; mkdir d/pwned-dir 2>/dev/null; done ) &
wait
rm -rf d
echo "race=done"
S
chown "$ML_USER:$ML_USER" "$H/ws/attack.sh"
out=$(ml run --image $IMG --timeout 300 --workspace /workspace -v "$H/ws:/workspace:host_fs" -- sh /workspace/attack.sh 2>"$T_TMP/e"); rc=$?
echo "$out" | sed 's/^/# /'
check_eq "the attack script runs to the end" 0 "$rc"
check_not_contains "a host-planted relative symlink does not reach outside" TOPSECRET "$(echo "$out" | grep '^esc=')"
check_not_contains "a host-planted absolute symlink does not reach outside" TOPSECRET "$(echo "$out" | grep '^abs=')"
check_contains "a guest symlink to / resolves in the guest" "root-link=" "$out"
check_contains "a hard link to a guest file outside the workspace is refused" "hardlink=1" "$out"
check_contains "device nodes are refused" "mknod=1" "$out"
check_contains "the race ran" "race=done" "$out"
check_eq "the host's secret is untouched" TOPSECRET "$(cat "$H/outside/secret")"
found=$( (find "$T_TMP" /tmp -maxdepth 4 -name 'pwned*' -not -path "$H/ws/*" 2>/dev/null; ls -d /pwned* 2>/dev/null) | head -5)
check_eq "nothing written outside the mount (no pwned* anywhere near)" "" "$found"
check_eq "the outside directory holds only its own file" secret "$(ls "$H/outside")"

# ---- a flood: many requests at once are served together; SIGTERM still ends the run ----
mkdir -p "$H/ws/flood" && (cd "$H/ws/flood" && seq 1 300 | xargs touch) && chown -R "$ML_USER:$ML_USER" "$H/ws/flood"
ML_ENV="MATCHLOCK_LOG=info" ml_bg run --image $IMG --rm=false --workspace /workspace -v "$H/ws:/workspace:host_fs" -- sh -c \
	'for i in 1 2 3 4 5 6 7 8; do (while :; do ls -l /workspace/flood >/dev/null; cat /workspace/flood/* >/dev/null; done) & done;
	 echo flooding; wait' >"$T_TMP/fo" 2>"$T_TMP/fe"
for _ in $(seq 1 240); do grep -q flooding "$T_TMP/fo" && break; sleep 0.25; done
sleep 8
t0=$(date +%s%N)
kill -TERM "$ML_PID"
wait "$ML_PID"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 10000 ] && ok "SIGTERM during a flood ends the run in ${ms} ms" || fail "SIGTERM during a flood took ${ms} ms (wanted < 10000)"
stats=$(grep -h "vfs: .* requests" "$ML_HOME"/.matchlock/vms/*/logs/vm.log 2>/dev/null | tail -1)
echo "# $stats"
inflight=$(echo "$stats" | sed -n 's/.*at most \([0-9]*\) in flight.*/\1/p')
[ "${inflight:-0}" -ge 2 ] && ok "the flood's requests were served several at once (at most $inflight in flight)" ||
	fail "requests in flight: wanted several at once, got [${inflight:-none}] ($stats)"
reqs=$(echo "$stats" | sed -n 's/^.*vfs: \([0-9]*\) requests.*/\1/p')
[ "${reqs:-0}" -ge 1000 ] && ok "the flood made $reqs requests" || fail "the flood made [${reqs:-none}] requests, wanted >= 1000"

# ---- the host deletes the workspace mid-run ----
mkdir -p "$H/gone" && echo before >"$H/gone/f" && chown -R "$ML_USER:$ML_USER" "$H/gone"
ml_bg run --image $IMG --workspace /workspace -v "$H/gone:/workspace:host_fs" -- sh -c \
	'cat /workspace/f; sleep 5; cat /workspace/f 2>&1; echo "cat=$?"; touch /workspace/new 2>&1; echo "touch=$?"; echo alive' >"$T_TMP/go" 2>"$T_TMP/ge"
for _ in $(seq 1 240); do grep -q before "$T_TMP/go" && break; sleep 0.25; done
rm -rf "$H/gone"
wait "$ML_PID"; rc=$?
check_eq "host dir deleted mid-run: the run still exits 0" 0 "$rc"
check_contains "host dir deleted mid-run: the guest lives on" alive "$(cat "$T_TMP/go")"
check_not_contains "host dir deleted mid-run: the file is gone for the guest" "cat=0" "$(cat "$T_TMP/go")"
check_not_contains "host dir deleted mid-run: nothing is created" "touch=0" "$(cat "$T_TMP/go")"
check_eq "host dir deleted mid-run: not recreated on the host" gone "$([ -e "$H/gone" ] || echo gone)"
check_no_qemu_left "no VM left"
done_testing
