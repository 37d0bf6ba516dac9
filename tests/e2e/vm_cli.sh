#!/bin/bash
# vm_cli: a sandbox users come back to from any shell: run -d -> list -> get/inspect -> exec
# (buffered, -i, -it, exit codes, 1 MiB, -w, -u, env, interrupted) -> log/-f -> kill -> rm;
# kill -9 of the owner -> crashed -> gc -> rm; prune and kill --all; the commands' exact
# messages; another user cannot see or touch the VM; exec into a VM made through `rpc`.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

# wait_exec ID: until `exec ID true` works (the id is printed before the VM is ready), 60 s
wait_exec() {
	for _ in $(seq 1 240); do ml exec "$1" true >/dev/null 2>&1 && return 0; sleep 0.25; done
	return 1
}

# --- messages of the commands without a VM
ml kill >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "kill without id: exit 1" 1 "$rc"; check_eq "kill without id: message" "VM ID required (or use --all)" "$(cat "$T_TMP/e")"
ml rm >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "rm without id: exit 1" 1 "$rc"; check_eq "rm without id: message" "VM ID required (or use --stopped)" "$(cat "$T_TMP/e")"
ml exec >/dev/null 2>&1; check_eq "exec without args: non-zero" 1 "$?"
ml exec vm-0000dead echo hi >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "exec unknown VM: exit 1" 1 "$rc"
check_eq "exec unknown VM: message" "VM not found vm-0000dead: VM vm-0000dead not found" "$(cat "$T_TMP/e")"
ml get vm-0000dead >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "get unknown VM: exit 1, message" "1 VM vm-0000dead not found" "$rc $(cat "$T_TMP/e")"
ml log vm-0000dead >/dev/null 2>"$T_TMP/e"
check_eq "log unknown VM: message" "VM not found vm-0000dead: VM vm-0000dead not found" "$(cat "$T_TMP/e")"
ml kill vm-0000dead >/dev/null 2>"$T_TMP/e"
check_eq "kill unknown VM: message" "VM vm-0000dead not found" "$(cat "$T_TMP/e")"
out=$(ml prune); check_eq "prune with nothing: Pruned 0 VMs" "Pruned 0 VMs" "$out"
out=$(ml ls); check_contains "ls: header" "ID  STATUS  IMAGE  CREATED  PID" "$out"
out=$(ml kill --all); check_eq "kill --all with nothing: exit 0, no output" "0 " "$? $out"
out=$(ml rm --stopped); check_eq "rm --stopped with nothing: exit 0" 0 "$?"

# --- run -d, and the VM from other processes
id=$(ml run --image $IMG -d -e VISIBLE_ENV=from-run -- sh -c 'echo first; sleep 3; echo second; sleep 600' 2>"$T_TMP/e"); rc=$?
check_eq "run -d: exit 0" 0 "$rc"
if [[ "$id" =~ ^vm-[0-9a-f]{8}$ ]]; then ok "run -d: prints only the id ($id)"; else fail "run -d printed [$id] (stderr $(cat "$T_TMP/e"))"; fi
wait_exec "$id" && ok "exec works once the detached VM is ready" || fail "exec never worked"
row=$(ml list | awk -v id="$id" '$1 == id')
check_eq "list: running" running "$(echo "$row" | awk '{print $2}')"
owner=$(echo "$row" | awk '{print $NF}')
check_contains "list: the owner is the detached matchlock" "matchlock" "$(cat /proc/"$owner"/comm 2>/dev/null)"
check_contains "list --running has it" "$id" "$(ml list --running)"
ml get "$id" >"$T_TMP/get.json"
check_eq "get: id, status, config.env" "$id running from-run" \
	"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["id"], d["status"], d["config"]["env"]["VISIBLE_ENV"])' "$T_TMP/get.json")"
check_eq "get: 2-space indented" '  "id": "'"$id"'",' "$(sed -n 2p "$T_TMP/get.json")"
phases=$(ml inspect "$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["vm"]["id"], d["lifecycle"]["vm_id"], " ".join(h["phase"] for h in d["history"]))')
check_eq "inspect: vm, lifecycle, history" "$id $id creating created starting running" "$phases"
check_contains "stat is inspect" "\"vm\"" "$(ml stat "$id")"

out=$(ml exec "$id" echo from-exec); check_eq "exec: output" from-exec "$out"
out=$(ml exec "$id" -- sh -c "echo one && echo two"); check_eq "exec -- sh -c" "one
two" "$out"
ml exec "$id" -- sh -c 'echo out; echo err >&2; exit 7' >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "exec: the command's exit status" 7 "$rc"
check_eq "exec: stdout apart" out "$(cat "$T_TMP/o")"; check_eq "exec: stderr apart" err "$(cat "$T_TMP/e")"
sum=$(ml exec "$id" -- sh -c 'head -c 1048576 /dev/urandom > /tmp/m; sha256sum /tmp/m | cut -c1-64')
got=$(ml exec "$id" cat /tmp/m | sha256sum | cut -c1-64)
check_eq "exec: 1 MiB of output intact" "$sum" "$got"
check_eq "exec -w" /tmp "$(ml exec -w /tmp "$id" pwd)"
check_eq "exec -u" 65534 "$(ml exec -u nobody "$id" -- id -u)"
check_eq "exec: the run's env" from-run "$(ml exec "$id" -- sh -c 'echo $VISIBLE_ENV')"
check_eq "exec: words are quoted as one command each" "a b|\$HOME|'q'" "$(ml exec "$id" printf '%s|%s|%s' 'a b' '$HOME' "'q'")"
check_eq "exec -i: stdin piped" "piped-in" "$(printf 'piped-in' | ml exec -i "$id" cat)"
head -c 3000000 /dev/urandom >"$T_TMP/big"
check_eq "exec -i: 3 MB of stdin intact" "$(sha256sum <"$T_TMP/big" | cut -c1-64)" "$(ml exec -i "$id" sha256sum <"$T_TMP/big" | cut -c1-64)"
printf 'send stty size; tty; exit 3\n' >"$T_TMP/pty.script"
out=$(python3 "$REPO/tests/lib/pty_run.py" 31 97 "$T_TMP/pty.script" -- setpriv --reuid="$ML_USER" --regid="$ML_USER" \
	--init-groups env -i PATH=/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" "$ML_BIN" exec -it "$id" sh 2>&1); rc=$?
check_eq "exec -it: the command's exit status" 3 "$rc"
check_contains "exec -it: the terminal's size" "31 97" "$out"
check_contains "exec -it: a real terminal" "/dev/pts/" "$out"
ml exec -it "$id" sh </dev/null >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "exec -it without a terminal: exit 1, message" "1 -it requires a TTY" "$rc $(cat "$T_TMP/e")"
ml exec "$id" >/dev/null 2>"$T_TMP/e"
check_eq "exec without a command" "command required (or use -it for interactive mode)" "$(cat "$T_TMP/e")"

# an interrupted exec kills its command in the guest. Started in the background of this
# script, the exec inherits SIGINT ignored (what a shell does to async commands): it must end
# on SIGINT all the same, at once (before, it ended only with its command, 300 s later).
ml_bg exec "$id" -- sh -c 'sleep 301 & sleep 302'
xpid=$ML_PID
sleep 2
s=$(date +%s)
kill -INT $xpid; wait $xpid 2>/dev/null; rc=$?
el=$(( $(date +%s) - s ))
check_eq "SIGINT ends a backgrounded exec at once (exit 130)" "130 fast" "$rc $([ "$el" -lt 10 ] && echo fast || echo "after ${el}s")"
sleep 1
check_eq "an interrupted exec's process group is killed" 0 "$(ml exec "$id" -- sh -c "ps -o args | grep -c '^sleep 30[12]' || true" | tr -d ' ')"

out=$(ml log "$id"); check_contains "log: the command's output" first "$out"
ml_bg log -f "$id" >"$T_TMP/follow"
fpid=$ML_PID
for _ in $(seq 1 40); do grep -q second "$T_TMP/follow" && break; sleep 0.25; done
kill -TERM $fpid; wait $fpid; rc=$?
check_eq "log -f: SIGTERM ends it with 0" 0 "$rc"
check_contains "log -f: follows appends" second "$(cat "$T_TMP/follow")"

out=$(ml kill "$id"); rc=$?
check_eq "kill: Killed <id>" "0 Killed $id" "$rc $out"
check_not_contains "kill: gone from list --running" "$id" "$(ml list --running)"
check_eq "kill: the record says stopped" stopped "$(ml list | awk -v id="$id" '$1 == id {print $2}')"
ml kill "$id" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "a second kill: the upstream message" "1 VM $id is not running" "$rc $(cat "$T_TMP/e")"
ml exec "$id" true 2>"$T_TMP/e"
check_eq "exec into a stopped VM" "VM $id is not running (status: stopped)" "$(cat "$T_TMP/e")"
out=$(ml rm "$id"); check_eq "rm: Removed <id>" "Removed $id" "$out"
check_not_contains "rm: gone from list" "$id" "$(ml list)"
check_no_qemu_left "no VM left after kill and rm"

# --- kill -9 of the owner: crashed, gc cleans, rm works
ml_bg run --image $IMG --rm=false -- true
rpid=$ML_PID
for _ in $(seq 1 240); do cid=$(ml list --running | awk -v p=$rpid '$NF == p {print $1}'); [ -n "$cid" ] && ml exec "$cid" true >/dev/null 2>&1 && break; sleep 0.25; done
kill -KILL $rpid; wait $rpid 2>/dev/null
check_eq "kill -9 of the owner: list says crashed" crashed "$(ml list | awk -v id="$cid" '$1 == id {print $2}')"
check_eq "crashed is persisted" crashed "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$ML_HOME/.matchlock/vms/$cid/vm.json")"
out=$(ml gc "$cid"); check_contains "gc: cleans what the crash left" "$cid: cleaned" "$out"
check_contains "gc: the scratch disk" scratch_remove "$out"
check_eq "gc: nothing left but logs and records" "lifecycle.jsonl logs vm.json" "$(ls "$ML_HOME/.matchlock/vms/$cid" | tr '\n' ' ' | sed 's/ $//')"
out=$(ml rm "$cid"); check_eq "rm after a crash" "Removed $cid" "$out"
check_no_qemu_left "kill -9: the VM died with its owner"

# --- prune, kill --all
a=$(ml run --image $IMG -d -- sleep 600); b=$(ml run --image $IMG -d -- sleep 600)
wait_exec "$a"; wait_exec "$b"
out=$(ml __complete exec ""); check_contains "completion: exec offers the first id" "$a" "$out"
check_contains "completion: exec offers the second id" "$b" "$out"
check_eq "completion: ids by prefix" "$a" "$(ml __complete kill "$a")"
check_eq "completion: no id after exec's id (the guest command)" "" "$(ml __complete exec "$a" "")"
out=$(ml kill --all); check_eq "kill --all: both" 2 "$(echo "$out" | grep -c '^Killed vm-')"
out=$(ml prune); check_contains "prune: each" "Pruned $a" "$out"; check_contains "prune: total" "Pruned 2 VMs" "$out"

# --- another user sees nothing and touches nothing
id=$(ml run --image $IMG -d -- sleep 600); wait_exec "$id"
id -u mltest2 >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mltest2
other() { setpriv --reuid=mltest2 --regid=mltest2 --init-groups env -i PATH=/usr/bin:/bin HOME="$ML_HOME" "$ML_BIN" "$@"; }
out=$(other list 2>&1); check_not_contains "another user's list does not show the VM" "$id" "$out"
other exec "$id" true >/dev/null 2>&1; check_eq "another user cannot exec into it" 1 "$?"
other kill "$id" >/dev/null 2>&1; check_eq "another user cannot kill it" 1 "$?"
check_eq "the VM still runs" running "$(ml list | awk -v id="$id" '$1 == id {print $2}')"
ml kill "$id" >/dev/null; ml rm "$id" >/dev/null

# --- a VM created through rpc is reachable too
cat >"$T_TMP/rpc_hold.py" <<'PY'
import json, subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.write(b'{"jsonrpc":"2.0","method":"create","params":{"image":"matchlock/default:latest"},"id":1}\n')
p.stdin.flush()
open(sys.argv[1], "w").write(json.loads(p.stdout.readline())["result"]["id"])
p.wait()
PY
python3 "$T_TMP/rpc_hold.py" "$T_TMP/rpc.id" setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups env -i \
	PATH=/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" "$ML_BIN" rpc &
hold=$!
for _ in $(seq 1 240); do [ -s "$T_TMP/rpc.id" ] && break; sleep 0.25; done
rid=$(cat "$T_TMP/rpc.id" 2>/dev/null)
check_eq "exec into an rpc-created VM" via-socket "$(ml exec "$rid" echo via-socket)"
owner=$(ml list | awk -v id="$rid" '$1 == id {print $NF}')
check_eq "its owner is the rpc process" matchlock "$(cat /proc/"$owner"/comm 2>/dev/null)"
ml kill "$rid" >/dev/null
wait $hold
check_eq "kill ends the rpc-created VM" stopped "$(ml list | awk -v id="$rid" '$1 == id {print $2}')"
check_no_qemu_left "no VM left"
done_testing
