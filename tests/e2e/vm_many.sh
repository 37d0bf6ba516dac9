#!/bin/bash
# vm_many: 8 detached sandboxes at once on this 2-core machine: each comes up, answers its own
# `exec`, shows in `list`, and `kill --all` + `prune` end and remove them all.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE
ids=()
for i in $(seq 1 8); do
	ids+=("$(ml run --image $IMG -d --memory 256 --cpus 0.5 -e N="$i" -- sleep 600)")
done
check_eq "8 run -d printed 8 ids" 8 "$(printf '%s\n' "${ids[@]}" | grep -c '^vm-[0-9a-f]\{8\}$')"
answered=0
for i in $(seq 1 8); do
	id=${ids[$((i - 1))]}
	for _ in $(seq 1 480); do ml exec "$id" true >/dev/null 2>&1 && break; sleep 0.25; done
	[ "$(ml exec "$id" -- sh -c 'echo $N')" = "$i" ] && answered=$((answered + 1))
done
check_eq "each of the 8 answers exec with its own environment" 8 "$answered"
check_eq "list --running shows all 8" 8 "$(ml list --running | grep -c '^vm-')"
out=$(ml kill --all)
check_eq "kill --all kills all 8" 8 "$(echo "$out" | grep -c '^Killed vm-')"
out=$(ml prune)
check_contains "prune removes all 8" "Pruned 8 VMs" "$out"
check_eq "nothing left in list" 0 "$(ml list | grep -c '^vm-')"
check_no_qemu_left "no VM left"
done_testing
