#!/bin/sh
# tests/lib/mkdebian.sh - the Debian bookworm test image (python3, curl, iperf3, git, python3-venv:
# the workspace tests clone repositories and build virtualenvs; wget, ca-certificates: the
# interception tests) as an OCI layout directory, built
# with `debootstrap --variant=minbase` from this machine's own Debian mirror (the one its apt
# sources name) and cached in /var/cache/matchlock-test, keyed by the package list, so a CI
# run builds it once (about a minute) and later test files and `make bench` reuse it.
#   mkdebian.sh  -> prints the layout directory (its image is tagged "bookworm" in the layout)
# Root only (debootstrap chroots). The layer is a tar of the rootfs with numeric owners.
set -eu
PKGS="python3 curl iperf3 git python3-venv wget ca-certificates"
SUITE=bookworm
CACHE=${MATCHLOCK_TEST_CACHE:-/var/cache/matchlock-test}

# The mirror apt uses for the main suite (deb822 .sources first, then one-line sources.list).
mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$SUITE" 'BEGIN {RS=""} $0 ~ "Suites:[^\n]*(^|[ \t])" s "([ \t]|$)" && $0 !~ /debian-security/ {
			for (i = 1; i <= NF; i++) if ($i == "URIs:") { print $(i + 1); exit } }' "$f"
	done | grep -m1 . && return 0
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v s="$SUITE" '$1 == "deb" && $3 == s {print $2; exit}' | grep -m1 .
}

M=$(mirror) || { echo "mkdebian: no $SUITE mirror in /etc/apt/sources.list*" >&2; exit 1; }
KEY=$(printf '%s %s %s minbase v1\n' "$SUITE" "$PKGS" "$M" | sha256sum | cut -c1-16)
OUT=$CACHE/debian-$KEY
mkdir -p "$CACHE"
exec 9>"$CACHE/debian.lock"
flock 9
if [ -f "$OUT/index.json" ]; then
	echo "$OUT"
	exit 0
fi
command -v debootstrap >/dev/null || { echo "mkdebian: debootstrap missing (scripts/setup.sh installs it)" >&2; exit 1; }
W=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$W"' EXIT
debootstrap --variant=minbase --include="$(echo $PKGS | tr ' ' ,)" "$SUITE" "$W/rootfs" "$M" >"$W/debootstrap.log" 2>&1 ||
	{ echo "mkdebian: debootstrap failed: $(tail -3 "$W/debootstrap.log")" >&2; exit 1; }
rm -rf "$W/rootfs/var/cache/apt/archives/"*.deb "$W/rootfs/var/lib/apt/lists/"* "$W/rootfs/var/log/"*.log
mkdir -p "$W/rootfs/srv/app"
printf 'print("hello from the image")\n' >"$W/rootfs/srv/app/hello.py"
tar --numeric-owner --xattrs --sort=name -C "$W/rootfs" -cf "$W/layer.tar" .
gzip -n -6 "$W/layer.tar"
python3 - "$W" <<'P'
import hashlib, json, os, sys
w = sys.argv[1]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{w}/layout/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
os.makedirs(f"{w}/layout/blobs/sha256")
h = hashlib.sha256()
import gzip
with gzip.open(f"{w}/layer.tar.gz") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
diff = "sha256:" + h.hexdigest()
lh = hashlib.sha256()
with open(f"{w}/layer.tar.gz", "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        lh.update(chunk)
ldig, lsize = "sha256:" + lh.hexdigest(), os.path.getsize(f"{w}/layer.tar.gz")
os.rename(f"{w}/layer.tar.gz", f"{w}/layout/blobs/sha256/{ldig[7:]}")
cfg = {"architecture": "amd64", "os": "linux", "created": "2025-05-20T00:00:00Z",
       "config": {"Cmd": ["python3"], "WorkingDir": "/srv/app", "User": "root",
                  "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"]},
       "rootfs": {"type": "layers", "diff_ids": [diff]},
       "history": [{"created": "2025-05-20T00:00:00Z", "created_by": "debootstrap --variant=minbase --include=python3,curl,iperf3,git,python3-venv bookworm"}]}
cdig, csize = put(json.dumps(cfg).encode())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ldig, "size": lsize}]}
mdig, msize = put(json.dumps(man).encode())
idx = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
       "platform": {"architecture": "amd64", "os": "linux"}, "annotations": {"org.opencontainers.image.ref.name": "bookworm"}}]}
open(f"{w}/layout/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open(f"{w}/layout/index.json", "w").write(json.dumps(idx))
P
chmod -R a+rX "$W/layout"
rm -rf "$OUT"
mv "$W/layout" "$OUT"
echo "$OUT"
