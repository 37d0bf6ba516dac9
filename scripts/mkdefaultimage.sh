#!/bin/sh
# scripts/mkdefaultimage.sh OUT.tar - builds the embedded default image matchlock/default:latest
# as an OCI image layout tar, from the installed busybox-static package (no network, no root:
# ownership is set in the archive headers, not on disk). Same input, same bytes out.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUT.tar" >&2; exit 2; }
out=$1
export LC_ALL=C TZ=UTC

bb=$(dpkg -L busybox-static 2>/dev/null | grep '/bin/busybox$' | head -n 1 || true)
[ -n "$bb" ] && [ -x "$bb" ] || { echo "mkdefaultimage: busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs
umask 022
for d in bin sbin usr/bin usr/sbin etc root tmp home var/tmp proc sys dev run workspace; do
	mkdir -p "$root/$d"
done
cp "$bb" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for p in $("$bb" --list-full); do
	[ "$p" = bin/busybox ] && continue
	mkdir -p "$root/$(dirname "$p")"
	ln -sf /bin/busybox "$root/$p"
done
[ -e "$root/bin/sh" ] || ln -s /bin/busybox "$root/bin/sh"

printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
	'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'shadow:x:42:' 'nogroup:x:65534:' >"$root/etc/group"
printf '%s\n' 'root:*:0:0:99999:7:::' 'daemon:*:0:0:99999:7:::' 'nobody:*:0:0:99999:7:::' >"$root/etc/shadow"
printf '%s\n' 'NAME="matchlock default (busybox)"' 'ID=matchlock-busybox' \
	'PRETTY_NAME="matchlock default (busybox)"' >"$root/etc/os-release"
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f ! -name busybox -exec chmod 0644 {} +
chmod 0700 "$root/root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0640 "$root/etc/shadow"

reproducible_tar() { # dir out members...
	d=$1; o=$2; shift 2
	tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		-C "$d" -cf "$o" "$@"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }

lay=$work/layout
mkdir -p "$lay/blobs/sha256"
reproducible_tar "$root" "$work/layer.tar" .
gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
diff_id=$(sha "$work/layer.tar")
layer=$(sha "$work/layer.tar.gz")
layer_size=$(size "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$lay/blobs/sha256/$layer"

printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/mkdefaultimage.sh"}]}' \
	"$diff_id" >"$work/config.json"
config=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
mv "$work/config.json" "$lay/blobs/sha256/$config"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
	"$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
manifest=$(sha "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")
mv "$work/manifest.json" "$lay/blobs/sha256/$manifest"

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
	"$manifest" "$manifest_size" >"$lay/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
find "$lay" -type d -exec chmod 0755 {} +
find "$lay" -type f -exec chmod 0644 {} +

reproducible_tar "$lay" "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
