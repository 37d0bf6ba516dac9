#!/bin/bash
# bench/run.sh - `make bench`: each figure beside a named baseline measured in the same run on
# the same machine, and the ratio. Runs matchlock as the invoking user (root is fine here: the
# numbers do not depend on it). Knobs: BENCH_BOOTS (boot-time samples, default 10),
# BENCH_RELIABILITY (consecutive runs, default 200), BENCH_RTT (round trips, default 500).
set -u
. "$(dirname "$0")/lib.sh"
N=${BENCH_BOOTS:-10}
REL=${BENCH_RELIABILITY:-200}
RTT=${BENCH_RTT:-500}

echo "# matchlock bench $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -n): $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), accel $(MATCHLOCK_LOG=info $ML run --image $IMG -- true 2>&1 | grep -o 'accelerator [a-z]*' | head -1 | cut -d' ' -f2)"

# --- 1. boot to first command vs the floor (same QEMU argv, /init = poweroff) ---
$ML run --image $IMG -- true >/dev/null 2>&1   # warm: rootfs and initramfs built once
for i in $(seq "$N"); do s=$(now); $ML run --image $IMG -- true; e=$(now); echo "$e - $s" | bc; done >"$W/ours"
gcc -static -O2 -o "$W/init" bench/floor_init.c
(cd "$W" && mkdir -p fl && cp init fl/init && cd fl && echo init | cpio -o -H newc --quiet >"$W/floor.cpio")
MATCHLOCK_LOG=info $ML run --image $IMG --rm=false -- true >/dev/null 2>"$W/keep.err" &
kp=$!
for _ in $(seq 100); do grep -q "is running" "$W/keep.err" && break; sleep 0.1; done
argv=$(grep -h -o 'engine: .*' "$HOME"/.matchlock/vms/*/logs/vm.log | head -1 | sed 's/^engine: //')
kill $kp; wait $kp 2>/dev/null
python3 - "$W" "$N" "$argv" >"$W/floor" <<'P'
import os, shlex, socket, subprocess, sys, time
w, n, argv = sys.argv[1], int(sys.argv[2]), shlex.split(sys.argv[3])
argv[argv.index("-initrd") + 1] = w + "/floor.cpio"
sock = None
for i, a in enumerate(argv):   # every disk and socket of the real VM, fresh for the floor
    if "path=" in a and "ctl.sock" in a:
        sock = w + "/floor-ctl.sock"
        argv[i] = a.replace(a.split("path=")[1].split(",")[0], sock)
    if a.startswith("id=scratch,file="):
        argv[i] = a.replace(a.split("file=")[1].split(",")[0], w + "/floor-scratch.img")
open(w + "/floor-scratch.img", "wb").truncate(64 << 20)
if sock is None:
    sys.exit("bench: no control socket in the logged engine argv")
for _ in range(n):
    try: os.unlink(sock)
    except FileNotFoundError: pass
    l = socket.socket(socket.AF_UNIX); l.bind(sock); l.listen(1)
    s = time.monotonic()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    print(time.monotonic() - s)
    l.close()
P
o=$(median <"$W/ours"); f=$(median <"$W/floor")
row "boot to first command (median s)" "$o" "$f" "qemu+kernel, /init powers off" "$(ratio "$o" "$f")" "<= 1.15"

# --- 2. boot reliability ---
fails=0
for i in $(seq "$REL"); do timeout 120 $ML run --image $IMG --timeout 90 -- true >/dev/null 2>>"$W/rel.err" || fails=$((fails + 1)); done
row "boot reliability (runs ok)" "$((REL - fails))/$REL" "$REL/$REL" "every run must pass" "-" "0 failures"

# --- 3. exec round trip vs raw echo on the same channel ---
MATCHLOCK_DATA_DIR=$REPO/build/lib/matchlock "$REPO/build/tests/tools/mlvm" rtt "$RTT" >"$W/rtt" 2>&1 || cat "$W/rtt"
e50=$(awk '/^echo/ {split($2,a,"="); print a[2]}' "$W/rtt"); e99=$(awk '/^echo/ {split($3,a,"="); print a[2]}' "$W/rtt")
x50=$(awk '/^exec / {split($2,a,"="); print a[2]}' "$W/rtt"); x99=$(awk '/^exec / {split($3,a,"="); print a[2]}' "$W/rtt")
row "exec true round trip p50 (us)" "$x50" "$e50" "raw echo, same channel" "$(ratio "$x50" "$e50")" "<= 1.5"
row "exec true round trip p99 (us)" "$x99" "$e99" "raw echo, same channel" "$(ratio "$x99" "$e99")" "-"
gs=$(awk '/^guest-spawn/ {split($2,a,"="); print a[2]}' "$W/rtt")
row "exec true round trip p50 (us)" "$x50" "$gs" "guest fork+exec of /bin/true" "$(ratio "$x50" "$gs")" "-"

# --- 4. rootfs build of a ~200 MB image vs mke2fs -d of the same tree ---
mkdir -p "$W/tree"
(cd / && tar -cf - --exclude='*/__pycache__' usr/lib/x86_64-linux-gnu usr/share/perl 2>/dev/null | head -c 220000000 | tar -xf - -C "$W/tree" 2>/dev/null)
tar -C "$W/tree" -cf "$W/layer.tar" . 2>/dev/null
python3 - "$W" <<'P'
import hashlib, json, os, sys, tarfile, io
w = sys.argv[1]
layer = open(w + "/layer.tar", "rb").read()
d = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [d(layer)]}}).encode()
man = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(cfg), "size": len(cfg)},
                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(layer), "size": len(layer)}]}).encode()
idx = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d(man), "size": len(man)}]}).encode()
with tarfile.open(w + "/big.tar", "w") as t:
    for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", idx)] + [("blobs/sha256/" + d(b)[7:], b) for b in (layer, cfg, man)]:
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
P
$ML image import bench/big:1 "$W/big.tar" >/dev/null 2>&1
ours=$("$REPO/build/tests/tools/mlrootfs" bench/big:1 | sed 's/.*build_s=\([0-9.]*\).*/\1/')
sz=$(du -sm "$W/tree" | cut -f1)
s=$(now); rm -rf "$W/x"; mkdir "$W/x"; tar -xf "$W/layer.tar" -C "$W/x"; m=$(now); mke2fs -q -t ext4 -d "$W/x" "$W/mk.img" 1G >/dev/null 2>&1; e=$(now)
base=$(echo "$e - $s" | bc); mkonly=$(echo "$e - $m" | bc)
row "rootfs build ${sz} MB (s)" "$ours" "$base" "root: tar -x + mke2fs -d" "$(ratio "$ours" "$base")" "<= 1.0"
row "rootfs build ${sz} MB (s)" "$ours" "$mkonly" "mke2fs -d alone" "$(ratio "$ours" "$mkonly")" "-"

# --- 5. supervisor memory with one idle VM ---
$ML run --image $IMG -- sleep 6 >/dev/null 2>&1 &
rp=$!
sleep 5
hwm=$(awk '/VmHWM/ {print $2}' /proc/$rp/status 2>/dev/null)
qp=$(pgrep -P $rp qemu-system | head -1)
qrss=$(awk '/VmRSS/ {print $2}' /proc/$qp/status 2>/dev/null)
wait $rp
row "supervisor peak RSS (KiB)" "$hwm" "$qrss" "the QEMU process beside it" "$(ratio "$hwm" "$qrss")" "<= 16384 KiB"

# --- issue 4: cold pull + rootfs against podman and skopeo+umoci; warm start ---
. bench/pull.sh

# --- issue 5: guest networking against QEMU's own user networking (same libslirp); floor ---
. bench/net.sh

# --- issue 10: exec round trip and create through `matchlock rpc` (Python SDK, wire client) ---
. bench/rpc.sh

# --- issue 12: exec into a running VM from another process; run -d to first exec ---
. bench/vm.sh

# --- issue 13: the workspace (vfs/) against the guest's own disk; overlay snapshot cost ---
. bench/vfs.sh

# --- issue 11: the TLS interception engine against mitmproxy and direct ---
. bench/mitm.sh
