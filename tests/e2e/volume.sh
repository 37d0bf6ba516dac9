#!/bin/bash
# volume: named volumes as the unprivileged user sees them: every message and exit code of
# `volume create|ls|rm|cp`, the --json the SDKs parse, data written in one run and read in the
# next, a copy that keeps bytes, mode, owner and mtime, the lock a running sandbox holds, and
# the real Python SDK's volume calls.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE
P=vt$$                      # the volumes dir is in the cache all test files share
VOLDIR=$ML_CACHE/matchlock/volumes
INVALID="(allowed: alphanumeric, '_', '.', '-', must start with alphanumeric)"

# err DESC WANT_LINE CMD...: exit 1 and exactly that one line on stderr
err() {
	desc=$1 want=$2; shift 2
	"$@" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
	check_eq "$desc: exit 1" 1 "$rc"
	check_eq "$desc: message" "$want" "$(cat "$T_TMP/e")"
}

# ---- create ----
out=$(ml volume create $P-a --size 32); rc=$?
check_eq "create: exit 0" 0 "$rc"
check_eq "create: the reference's line, no path" "Created volume $P-a (32 MB)" "$out"
check_eq "create: a 32 MiB file" 33554432 "$(stat -c %s "$VOLDIR/$P-a.ext4")"
check_eq "create: owned by the user, 0644" "mltest 644" "$(stat -c '%U %a' "$VOLDIR/$P-a.ext4")"
err "create existing" "named volume already exists: $P-a" ml volume create $P-a --size 16
err "create --size 0" "create named volume: size must be > 0 MB" ml volume create $P-z --size 0
err "create --size -4" "create named volume: size must be > 0 MB" ml volume create $P-z --size -4
err "create bad name" "invalid volume name: \"-x\" $INVALID" ml volume create -- -x
err "create name with a slash" "invalid volume name: \"a/b\" $INVALID" ml volume create a/b
err "create empty name" "invalid volume name: name cannot be empty" ml volume create " "
err "create without a name" "accepts 1 arg(s), received 0" ml volume create
err "create two names" "accepts 1 arg(s), received 2" ml volume create x y
out=$(ml volume create $P-j --size 16 --json); rc=$?
check_eq "create --json: exit 0" 0 "$rc"
check_eq "create --json: one compact line" "{\"name\":\"$P-j\",\"size\":\"16.0 MB\",\"path\":\"$VOLDIR/$P-j.ext4\"}" "$out"
s=$(date +%s%N)
ml volume create $P-big >/dev/null; rc=$?
ms=$(( ($(date +%s%N) - s) / 1000000 ))
check_eq "create default size: exit 0" 0 "$rc"
check_eq "create default size: 10240 MiB" 10737418240 "$(stat -c %s "$VOLDIR/$P-big.ext4")"
kb=$(du -k "$VOLDIR/$P-big.ext4" | cut -f1)
if [ "$kb" -lt 4096 ]; then ok "create: sparse (10 GiB volume takes ${kb} KiB, made in ${ms} ms)"; else fail "create: 10 GiB volume takes ${kb} KiB"; fi
if e2fsck -fn "$VOLDIR/$P-big.ext4" >/dev/null 2>&1; then ok "create: e2fsck finds a clean filesystem"; else fail "create: e2fsck -fn: $(e2fsck -fn "$VOLDIR/$P-big.ext4" 2>&1 | tail -3)"; fi
if dumpe2fs -h "$VOLDIR/$P-big.ext4" 2>/dev/null | grep -q has_journal; then ok "create: the volume has a journal"; else fail "create: no journal"; fi

# ---- ls ----
out=$(ml volume ls); rc=$?
check_eq "ls: exit 0" 0 "$rc"
check_contains "ls: header" "NAME" "$(printf '%s' "$out" | head -1)"
check_contains "ls: SIZE column" "SIZE" "$(printf '%s' "$out" | head -1)"
check_not_contains "ls: no PATH column" "PATH" "$out"
check_eq "ls: a row" "$P-a 32.0 MB" "$(printf '%s\n' "$out" | grep "^$P-a " | tr -s ' ')"
check_eq "ls list alias" "$out" "$(ml volume list)"
names=$(printf '%s\n' "$out" | tail -n +2 | awk '{print $1}')
check_eq "ls: sorted by name" "$(printf '%s\n' "$names" | LC_ALL=C sort)" "$names"
js=$(ml volume ls --json)
got=$(printf '%s' "$js" | python3 -c "import json,sys; v={x['name']:x for x in json.load(sys.stdin)}; x=v['$P-j']; print(x['size'], x['path'])")
check_eq "ls --json: size and path as create said" "16.0 MB $VOLDIR/$P-j.ext4" "$got"
check_eq "ls --json with no volumes: []" "[]" "$(ML_ENV="XDG_CACHE_HOME=$T_TMP/nocache" ml volume ls --json)"
check_eq "ls with no volumes: header only" "NAME  SIZE" "$(ML_ENV="XDG_CACHE_HOME=$T_TMP/nocache" ml volume ls)"
err "ls with an argument" "accepts 0 arg(s), received 1" ml volume ls x

# ---- rm ----
check_eq "rm: the reference's line" "Removed volume $P-j" "$(ml volume rm $P-j)"
check_not_contains "rm: gone from ls" "$P-j " "$(ml volume ls)"
err "rm again" "named volume not found: $P-j" ml volume rm $P-j
err "rm alias remove, missing" "named volume not found: $P-nope" ml volume remove $P-nope
err "rm bad name" "invalid volume name: \"..\" $INVALID" ml volume rm ..
ml volume rm $P-big >/dev/null

# ---- one run writes, the next reads ----
ml run --image $IMG --no-network --disk @$P-a:/foo -- sh -c 'echo persisted > /foo/abc && echo copied > /foo/payload && chmod 640 /foo/payload && chown 1234:4321 /foo/payload'; rc=$?
check_eq "run writes to the volume: exit 0" 0 "$rc"
out=$(ml run --image $IMG --no-network --disk @$P-a:/foo -- cat /foo/abc)
check_eq "the next run reads what the first wrote" "persisted" "$out"
state=$(dumpe2fs -h "$VOLDIR/$P-a.ext4" 2>/dev/null | grep -E '^Filesystem (state|features)')
check_contains "after a run the filesystem is clean (the guest unmounted it)" "clean" "$state"
check_not_contains "after a run no journal replay is pending" "needs_recovery" "$state"

# ---- cp ----
as_user chmod 0600 "$VOLDIR/$P-a.ext4"
as_user touch -d '2001-02-03 04:05:06' "$VOLDIR/$P-a.ext4"
check_eq "cp: the reference's line" "Copied volume $P-a to $P-b" "$(ml volume cp $P-a $P-b)"
check_eq "cp: mode, owner and mtime kept" "$(stat -c '%a %U:%G %Y' "$VOLDIR/$P-a.ext4")" "$(stat -c '%a %U:%G %Y' "$VOLDIR/$P-b.ext4")"
if cmp -s "$VOLDIR/$P-a.ext4" "$VOLDIR/$P-b.ext4"; then ok "cp: same bytes"; else fail "cp: the copy differs"; fi
a_kb=$(du -k "$VOLDIR/$P-a.ext4" | cut -f1); b_kb=$(du -k "$VOLDIR/$P-b.ext4" | cut -f1)
if [ "$b_kb" -le $((a_kb + 256)) ]; then ok "cp: holes kept (${a_kb} KiB -> ${b_kb} KiB)"; else fail "cp: ${a_kb} KiB became ${b_kb} KiB"; fi
check_eq "cp alias copy" "Copied volume $P-a to $P-c" "$(ml volume copy $P-a $P-c)"
err "cp onto itself" "copy named volume: source and destination must be different" ml volume cp $P-a $P-a
err "cp from a missing volume" "named volume not found: $P-nope" ml volume cp $P-nope $P-x
err "cp onto an existing volume" "named volume already exists: $P-b" ml volume cp $P-a $P-b
err "cp to a bad name" "invalid volume name: \"-x\" $INVALID" ml volume cp -- $P-a -x
err "cp with one name" "accepts 2 arg(s), received 1" ml volume cp $P-a
ML_ENV="XDG_CACHE_HOME=$T_TMP/nocache" err "cp in an empty cache" "named volume not found: $P-a" ml volume cp $P-a $P-x
out=$(ml run --image $IMG --no-network --disk "@$P-a:/src,@$P-b:/dst:ro" -- sh -c 'stat -c "%u:%g %a" /src/payload /dst/payload; cat /src/payload /dst/payload')
check_eq "cp: the copy mounts and holds the same file (owner, mode, content)" $'1234:4321 640\n1234:4321 640\ncopied\ncopied' "$out"
left=$(ls -A "$VOLDIR" | grep -c '^\.' || true)
check_eq "no temp files left in the volumes dir" 0 "$left"

# ---- a running sandbox holds its volume ----
ml_bg run --image $IMG --no-network --rm=false --disk @$P-a:/foo -- true 2>"$T_TMP/bg"
if wait_guest_running; then ok "a sandbox holding $P-a runs"; else fail "the holding sandbox did not start: $(cat "$T_TMP/bg")"; fi
vm=$(ls "$ML_HOME/.matchlock/vms" | head -1)
err "a second sandbox cannot attach it" "attaching disks: disk $VOLDIR/$P-a.ext4 is in use by VM $vm" \
	ml run --image $IMG --no-network --disk @$P-a:/bar -- true
err "nor read-only while it is written" "attaching disks: disk $VOLDIR/$P-a.ext4 is in use by VM $vm" \
	ml run --image $IMG --no-network --disk @$P-a:/bar:ro -- true
err "rm refuses a volume in use" "named volume $P-a is in use by VM $vm" ml volume rm $P-a
err "cp refuses a volume being written" "copy named volume: $P-a is in use by VM $vm" ml volume cp $P-a $P-d
kill -TERM "$ML_PID"; wait "$ML_PID"
check_eq "once that sandbox is gone, rm works" "Removed volume $P-a" "$(ml volume rm $P-a)"
ml volume rm $P-b >/dev/null; ml volume rm $P-c >/dev/null

# ---- a sandbox killed outright leaves a journal to replay ----
ml volume create $P-k --size 32 >/dev/null
ml_bg run --image $IMG --no-network --rm=false --disk @$P-k:/k -- sh -c 'echo synced > /k/f; sync; echo DONE' >"$T_TMP/k.out" 2>/dev/null
for _ in $(seq 1 120); do grep -qs DONE "$T_TMP/k.out" && break; sleep 0.25; done
kill -KILL "$ML_PID"; wait "$ML_PID" 2>/dev/null
check_contains "killed: the journal needs replaying" "needs_recovery" "$(dumpe2fs -h "$VOLDIR/$P-k.ext4" 2>/dev/null | grep features)"
ml run --image $IMG --no-network --disk @$P-k:/k:ro -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "killed: a read-only attach is refused" 1 "$rc"
check_eq "killed: and says what to do" "attaching disks: disk $VOLDIR/$P-k.ext4 was not unmounted cleanly (its journal needs replaying, which a read-only disk cannot do): attach it read-write once to repair it" "$(cat "$T_TMP/e")"
check_eq "killed: a read-write attach replays it; synced data is there" "synced" "$(ml run --image $IMG --no-network --disk @$P-k:/k -- cat /k/f)"
check_eq "killed: then read-only works again" "synced" "$(ml run --image $IMG --no-network --disk @$P-k:/k:ro -- cat /k/f)"
ml volume rm $P-k >/dev/null

# ---- the real Python SDK (Client.volume_create/list/remove call this binary) ----
if [ -z "${MATCHLOCK_PY_SDK:-}" ]; then
	echo "# skip: SDK volume calls not run: MATCHLOCK_PY_SDK (the Python SDK's folder) is not set"
else
	cat >"$T_TMP/sdk.py" <<EOF
import subprocess, matchlock
c = matchlock.Client()
v = c.volume_create("$P-sdk", 16)
print("create", v.name, v.size, v.path == "$VOLDIR/$P-sdk.ext4")
l = [x for x in c.volume_list() if x.name == "$P-sdk"]
print("list", len(l), l[0].size, l[0].path == v.path)
d = c.volume_create("$P-sdk2")
print("default", d.size)
c.volume_remove("$P-sdk2")
c.volume_remove("$P-sdk")
print("removed", [x.name for x in c.volume_list() if x.name.startswith("$P-sdk")])
try:
    c.volume_remove("$P-sdk")
    print("remove-missing no error")
except subprocess.CalledProcessError as e:
    print("remove-missing", e.returncode, e.stderr.strip())
EOF
	chmod 0644 "$T_TMP/sdk.py"
	out=$(ML_ENV="PYTHONPATH=$MATCHLOCK_PY_SDK PYTHONDONTWRITEBYTECODE=1 MATCHLOCK_BIN=$ML_BIN" as_user python3 "$T_TMP/sdk.py" 2>&1)
	check_contains "SDK volume_create: name, \"16.0 MB\", path" "create $P-sdk 16.0 MB True" "$out"
	check_contains "SDK volume_list: same size and path" "list 1 16.0 MB True" "$out"
	check_contains "SDK volume_create default size" "default 10240.0 MB" "$out"
	check_contains "SDK volume_remove: gone from the list" "removed []" "$out"
	check_contains "SDK volume_remove of a missing volume fails with the CLI's line" "remove-missing 1 named volume not found: $P-sdk" "$out"
fi
check_no_qemu_left "no VM left"
done_testing
