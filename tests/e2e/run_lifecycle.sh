#!/bin/bash
# run_lifecycle: --timeout kills the VM and says so; SIGINT/SIGTERM to run tear everything
# down; a guest that panics or floods its console cannot hang the supervisor.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

s=$(date +%s)
ml run --image $IMG --timeout 4 -- sleep 600 >/dev/null 2>"$T_TMP/e"; rc=$?
el=$(( $(date +%s) - s ))
check_eq "--timeout: exit 1" 1 "$rc"
check_contains "--timeout: says so" "timed out after 4 s" "$(cat "$T_TMP/e")"
if [ "$el" -lt 30 ]; then ok "--timeout ended the run (${el}s)"; else fail "--timeout took ${el}s"; fi
check_no_qemu_left "--timeout killed the VM"

for sig in TERM INT; do
	ml_bg run --image $IMG -- sleep 600 >/dev/null 2>&1
	pid=$ML_PID
	wait_guest_running
	sleep 1
	kill -$sig $pid
	s=$(date +%s)
	wait $pid; rc=$?
	el=$(( $(date +%s) - s ))
	if [ "$rc" -ne 0 ] && [ "$el" -lt 10 ]; then ok "SIG$sig ends run (rc $rc, ${el}s)"; else fail "SIG$sig: rc $rc after ${el}s"; fi
	check_no_qemu_left "SIG$sig: VM torn down"
	left=$(ls "$ML_HOME/.matchlock/vms" 2>/dev/null | wc -l)
	check_eq "SIG$sig: VM state removed" 0 "$left"
done

# kill -9 of the supervisor: its VM dies with it, and `gc` removes what it left (the network's
# flow socket directory included: it lives in the VM's dir, nothing is left in $TMPDIR).
mkdir -p "$T_TMP/tmpdir" && chmod 0777 "$T_TMP/tmpdir"
ML_ENV="TMPDIR=$T_TMP/tmpdir" ml_bg run --image $IMG -- sleep 600 >/dev/null 2>&1
pid=$ML_PID
wait_guest_running
sleep 0.5
kill -KILL $pid; wait $pid 2>/dev/null
check_no_qemu_left "kill -9 of run: the VM died with it"
out=$(ml gc); rc=$?
check_eq "gc: exit 0" 0 "$rc"
check_contains "gc cleaned the crashed VM" "scratch_remove" "$out"
check_contains "gc summary" "Reconciled 1 VMs" "$out"
check_contains "gc removed the network's socket directory" "network_dir_remove" "$out"
check_eq "kill -9 of run: nothing left in its TMPDIR" "" "$(ls -A "$T_TMP/tmpdir")"
left=$(find "$ML_HOME/.matchlock/vms" -name scratch.ext4 | wc -l)
check_eq "gc left no scratch disk" 0 "$left"
out=$(ml gc); check_contains "gc again: nothing to clean" "no resources to clean" "$out"
rm -rf "$ML_HOME"/.matchlock/vms/vm-*

# A state path too long for the VM's sockets (a long $HOME): one clear line, nothing started.
long=$T_TMP/home-$(printf 'l%.0s' $(seq 1 90))
mkdir -p "$long" && chown "$ML_USER:$ML_USER" "$long" && chmod 0700 "$long"
ML_ENV="HOME=$long" ml run --image $IMG -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "state path too long for a socket: exit 1" 1 "$rc"
check_contains "state path too long for a socket: says so" "control socket path too long" "$(cat "$T_TMP/e")"
check_one_line "state path too long for a socket: one line" "$T_TMP/e"
rm -rf "$long"

# A state path where the VM's sockets fit but <VM dir>/net/flow.sock does not (VM dir of 95
# bytes): the flow socket lives in a `slirpnet-*` temp dir that <VM dir>/net links to. The
# network works through it, a normal end removes both, and after a kill -9 `gc` follows the
# link: nothing is left in $TMPDIR.
base=$(mktemp -d /tmp/mlstate.XXXXXX)
long=$base/$(printf 'l%.0s' $(seq 1 $((95 - 27 - ${#base} - 1))))
mkdir -p "$long" && chown -R "$ML_USER:$ML_USER" "$base" && chmod 0700 "$base" "$long"
lenv="HOME=$long TMPDIR=$T_TMP/tmpdir"
python3 -m http.server --bind 127.0.0.1 0 --directory "$T_TMP/tmpdir" >"$T_TMP/http.log" 2>&1 &
hpid=$!
for _ in $(seq 1 40); do hport=$(ss -Hltnp 2>/dev/null | awk -v p="pid=$hpid," '$0 ~ p {sub(/.*:/, "", $4); print $4}'); [ -n "$hport" ] && break; sleep 0.25; done
out=$(ML_ENV=$lenv ml run --image $IMG --allow-host 10.0.2.2 -- wget -q -O - "http://10.0.2.2:$hport/" 2>&1); rc=$?
check_eq "flow socket via a link: a TCP flow works (exit 0)" 0 "$rc"
check_contains "flow socket via a link: the host's reply came back (it lists the link's temp dir)" "slirpnet-" "$out"
check_eq "flow socket via a link: a normal end leaves no temp dir" "" "$(ls -A "$T_TMP/tmpdir")"
kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null
ML_ENV=$lenv ml_bg run --image $IMG -- sleep 600 >/dev/null 2>&1
pid=$ML_PID
for _ in $(seq 1 120); do grep -qs "agent hello" "$long"/.matchlock/vms/*/logs/vm.log && break; sleep 0.25; done
vmd=$(ls -d "$long"/.matchlock/vms/vm-* 2>/dev/null | head -n 1)
check_eq "flow socket via a link: the VM dir is 95 bytes" 95 "${#vmd}"
check_contains "flow socket via a link: <VM dir>/net links to the temp dir" "$T_TMP/tmpdir/slirpnet-" "$(readlink "$vmd/net")"
kill -KILL $pid; wait $pid 2>/dev/null
out=$(ML_ENV=$lenv ml gc); rc=$?
check_eq "flow socket via a link: gc exit 0" 0 "$rc"
check_contains "flow socket via a link: gc removed the network's directory" "network_dir_remove" "$out"
check_eq "flow socket via a link: nothing left in its TMPDIR" "" "$(ls -A "$T_TMP/tmpdir")"
check_eq "flow socket via a link: the link is gone" "no" "$([ -L "$vmd/net" ] && echo yes || echo no)"
rm -rf "$base"

# A kernel panic in the guest ends the run with a clear error, quickly.
s=$(date +%s)
ml run --image $IMG --privileged -- sh -c 'echo c > /proc/sysrq-trigger; sleep 600' >/dev/null 2>"$T_TMP/e"; rc=$?
el=$(( $(date +%s) - s ))
check_eq "guest panic: exit 1" 1 "$rc"
check_contains "guest panic: the sandbox died" "sandbox died" "$(cat "$T_TMP/e")"
if [ "$el" -lt 60 ]; then ok "guest panic noticed (${el}s)"; else fail "guest panic took ${el}s"; fi

# A guest flooding its console: the run still ends at --timeout, and the log stays capped.
s=$(date +%s)
ml run --image $IMG --privileged --timeout 8 -- sh -c 'while :; do cat /bin/busybox > /dev/console; done' >/dev/null 2>&1; rc=$?
el=$(( $(date +%s) - s ))
check_eq "console flood: ended by --timeout" 1 "$rc"
if [ "$el" -lt 40 ]; then ok "console flood: supervisor responsive (${el}s)"; else fail "console flood took ${el}s"; fi
check_no_qemu_left "no VM left"
done_testing
