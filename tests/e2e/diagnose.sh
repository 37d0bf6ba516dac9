#!/bin/bash
# diagnose: the host checks of this rootless design and a real boot, as the unprivileged user:
# --json parses into the reference's shape, the text form has one mark per check, and a
# missing kernel, an unwritable home or a guest that never answers make it fail (exit 1, the
# reference's last line) with the failing check saying why and what to do.
. "$(dirname "$0")/../lib/harness.sh"
NAMES="engine kvm-device kvm-access accelerator guest-kernel guest-agent state-dir cache-dir libslirp open-files processes boot"

# field JSON_FILE NAME KEY: one check's field ("" when absent)
field() {
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); c=[x for x in d['checks'] if x['name']==sys.argv[2]]; print(c[0].get(sys.argv[3],'') if c else 'NO-SUCH-CHECK')" "$@"
}

ml diagnose --json >"$T_TMP/d.json" 2>"$T_TMP/e"; rc=$?
check_eq "healthy host: exit 0" 0 "$rc"
shape=$(python3 - "$T_TMP/d.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = [c for c in d["checks"] if c["status"] not in ("pass", "warn", "fail") or not c["message"]
       or set(c) - {"name", "status", "message", "fix"} or ("fix" in c and not c["fix"])]
print(type(d["ok"]).__name__, d["ok"], " ".join(c["name"] for c in d["checks"]), len(bad))
PY
)
check_eq "--json: ok, every check in order, each well formed" "bool True $NAMES 0" "$shape"
check_contains "--json: the engine and its version" "(QEMU " "$(field "$T_TMP/d.json" engine message)"
acc=$(field "$T_TMP/d.json" accelerator message)
case "$acc" in "VMs will use KVM: "*|"VMs will use TCG (emulation, slower): "*) ok "accelerator: says which and why ($acc)" ;; *) fail "accelerator: [$acc]" ;; esac
check_contains "guest-kernel: names the kernel version" "$(cat "$ML_PREFIX/lib/matchlock/kernel/version")" "$(field "$T_TMP/d.json" guest-kernel message)"
check_contains "state-dir: free space" "GB free" "$(field "$T_TMP/d.json" state-dir message)"
check_contains "libslirp: its version" "libslirp 4." "$(field "$T_TMP/d.json" libslirp message)"
check_contains "open-files: what one sandbox needs" "a sandbox needs about 40 plus 3 per open guest TCP connection" "$(field "$T_TMP/d.json" open-files message)"
check_contains "processes: what one sandbox needs" "about 8 tasks each" "$(field "$T_TMP/d.json" processes message)"
boot=$(field "$T_TMP/d.json" boot message)
check_eq "boot: passed" "pass" "$(field "$T_TMP/d.json" boot status)"
case "$boot" in "booted matchlock/default:latest and ran \`true\` in "*" s ("*")") ok "boot: timed ($boot)" ;; *) fail "boot: [$boot]" ;; esac

out=$(ml diagnose 2>&1); rc=$?
check_eq "text: exit 0" 0 "$rc"
marks=$(printf '%s\n' "$out" | grep -v '^  fix: ' | grep -cvE '^(✓|⚠|✗) [a-z-]+: ')
check_eq "text: every line is a mark line or a fix line" 0 "$marks"
check_eq "text: one line per check" 12 "$(printf '%s\n' "$out" | grep -cE '^(✓|⚠|✗) ')"
check_contains "text: the boot line" "✓ boot: booted matchlock/default:latest" "$out"

# A missing kernel: that check fails, the boot is not attempted, the command fails.
ML_ENV="MATCHLOCK_KERNEL=/nonexistent" ml diagnose >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "no kernel: exit 1" 1 "$rc"
check_eq "no kernel: stderr is the reference's line" "diagnose failed: one or more checks failed" "$(cat "$T_TMP/e")"
check_contains "no kernel: the failing check" "✗ guest-kernel: guest kernel not found at /nonexistent" "$(cat "$T_TMP/o")"
check_contains "no kernel: a fix hint" "  fix: run \`sh scripts/setup.sh\`" "$(cat "$T_TMP/o")"
check_contains "no kernel: the boot is not attempted" "✗ boot: not attempted" "$(cat "$T_TMP/o")"
last=$(ML_ENV="MATCHLOCK_KERNEL=/nonexistent" ml diagnose 2>&1 | tail -1)
check_eq "no kernel: the last line" "diagnose failed: one or more checks failed" "$last"
ML_ENV="MATCHLOCK_KERNEL=/nonexistent" ml diagnose --json >"$T_TMP/f.json" 2>"$T_TMP/e"; rc=$?
check_eq "no kernel --json: exit 1" 1 "$rc"
check_eq "no kernel --json: ok is false" "False" "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['ok'])" "$T_TMP/f.json")"
check_eq "no kernel --json: guest-kernel fails" "fail" "$(field "$T_TMP/f.json" guest-kernel status)"
check_contains "no kernel --json: with a fix" "scripts/setup.sh" "$(field "$T_TMP/f.json" guest-kernel fix)"
check_eq "no kernel --json: stderr is the reference's line" "diagnose failed: one or more checks failed" "$(cat "$T_TMP/e")"

# A data dir copied without its kernel.
mkdir -p "$T_TMP/nodata" && cp -r "$ML_PREFIX/lib/matchlock/agent" "$ML_PREFIX/lib/matchlock/images" "$T_TMP/nodata/"
chmod -R a+rX "$T_TMP/nodata"
ML_ENV="MATCHLOCK_DATA_DIR=$T_TMP/nodata" ml diagnose >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "data dir without a kernel: exit 1" 1 "$rc"
check_contains "data dir without a kernel: says where it looked" "✗ guest-kernel: guest kernel not found at $T_TMP/nodata/kernel/vmlinuz" "$(cat "$T_TMP/o")"
check_contains "data dir without a kernel: the agent is still found" "✓ guest-agent: $T_TMP/nodata/agent" "$(cat "$T_TMP/o")"

# A home the user cannot write.
ML_ENV="HOME=/proc/nonexistent-home XDG_CACHE_HOME=" ml diagnose >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "unwritable home: exit 1" 1 "$rc"
check_contains "unwritable home: state-dir fails" "✗ state-dir: /proc is not writable by this user" "$(cat "$T_TMP/o")"

# A guest that never answers: the boot check fails with run's reason, in bounded time.
cp /bin/busybox "$T_TMP/fake-agent" && chmod 0755 "$T_TMP/fake-agent"
s=$(date +%s)
ML_ENV="MATCHLOCK_GUEST_AGENT=$T_TMP/fake-agent MATCHLOCK_BOOT_TIMEOUT=6" ml diagnose >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
el=$(( $(date +%s) - s ))
check_eq "silent guest: exit 1" 1 "$rc"
check_contains "silent guest: boot fails with run's reason" "✗ boot: booting matchlock/default:latest and running \`true\` failed: the guest did not answer within the boot timeout (6s)" "$(cat "$T_TMP/o")"
if [ "$el" -lt 60 ]; then ok "silent guest: gave up in ${el}s"; else fail "silent guest: took ${el}s"; fi
check_no_qemu_left "no VM left"
done_testing
