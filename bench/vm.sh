#!/bin/bash
# bench/vm.sh - issue 12's figures for `make bench`, sourced by bench/run.sh (uses its ML, W,
# row, ratio, median) or run alone:
#  1. `matchlock exec <id> -- true`, the whole CLI process, against the same VM's exec through
#     its control socket on one persistent connection (the owner's in-process exec path, no
#     process start), p50/p99, same VM, same run, turns alternating.
#  2. `run -d` to the first successful `exec`, against `run -- true` (spawn to exit).
# Knobs: BENCH_VM_RTT (samples, default 200), BENCH_VM_BOOTS (default 5).
set -u
declare -F row >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VN=${BENCH_VM_RTT:-200}
VB=${BENCH_VM_BOOTS:-5}
vm_wait() { for _ in $(seq 1 400); do "$ML" exec "$1" true >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

id=$("$ML" run --image "$IMG" -d -- sleep 3600)
vm_wait "$id" || echo "vm: $id never answered"
python3 - "$ML" "$id" "$HOME/.matchlock/vms/$id/exec.sock" "$VN" >"$W/vm-rtt" <<'P'
import json, socket, subprocess, sys, time
ml, vid, sock, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rb")
def sock_exec(i):
    s.sendall(json.dumps({"jsonrpc": "2.0", "method": "exec", "params": {"command": "true"}, "id": i}).encode() + b"\n")
    while json.loads(f.readline()).get("id") != i:
        pass
cli, con = [], []
for i in range(1, n + 1):
    t = time.monotonic(); subprocess.run([ml, "exec", vid, "--", "true"], check=True); cli.append(time.monotonic() - t)
    t = time.monotonic(); sock_exec(i); con.append(time.monotonic() - t)
q = lambda v, p: sorted(v)[min(len(v) - 1, int(len(v) * p))] * 1e6
print(f"cli p50_us={q(cli, .5):.0f} p99_us={q(cli, .99):.0f}")
print(f"socket p50_us={q(con, .5):.0f} p99_us={q(con, .99):.0f}")
P
"$ML" kill "$id" >/dev/null; "$ML" rm "$id" >/dev/null
vf() { awk -v k="$1" -v f="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == f) print a[2] } }' "$W/vm-rtt"; }
row "exec <id> -- true p50 (us)" "$(vf cli p50_us)" "$(vf socket p50_us)" "same VM, one socket connection" "$(ratio "$(vf cli p50_us)" "$(vf socket p50_us)")" "-"
row "exec <id> -- true p99 (us)" "$(vf cli p99_us)" "$(vf socket p99_us)" "same VM, one socket connection" "$(ratio "$(vf cli p99_us)" "$(vf socket p99_us)")" "-"

: >"$W/vm-d"; : >"$W/vm-run"
for _ in $(seq 1 "$VB"); do
	s=$(now); id=$("$ML" run --image "$IMG" -d -- sleep 3600); vm_wait "$id"; e=$(now)
	echo "$e - $s" | bc >>"$W/vm-d"
	"$ML" kill "$id" >/dev/null; "$ML" rm "$id" >/dev/null
	s=$(now); "$ML" run --image "$IMG" -- true; e=$(now)
	echo "$e - $s" | bc >>"$W/vm-run"
done
d=$(median <"$W/vm-d"); r=$(median <"$W/vm-run")
row "run -d to first exec (median s)" "$d" "$r" "run -- true, spawn to exit" "$(ratio "$d" "$r")" "-"
