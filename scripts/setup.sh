#!/bin/sh
# Idempotent machine set-up for building, running and testing matchlock on Debian 12.
# Installs the Debian packages, then fetches Debian's cloud kernel with apt (pinned) and unpacks
# it into the build tree's data directory (build/lib/matchlock/kernel), never into /boot.
# Run as root (apt). Safe to run again: every step checks before it acts.
set -eu
cd "$(dirname "$0")/.."

KVER=6.1.0-56-cloud-amd64          # the kernel ABI our initramfs modules are resolved against
KPKG_VERSION=6.1.192-2             # pinned Debian package version of linux-image-$KVER

PKGS="build-essential pkg-config clang libclang-rt-14-dev
 qemu-system-x86 libslirp-dev libglib2.0-dev libjansson-dev libgnutls28-dev libfuse3-dev
 libarchive-dev libcurl4-gnutls-dev libseccomp-dev libext2fs-dev libsqlite3-dev libzstd-dev
 zlib1g-dev libcmocka-dev e2fsprogs kmod busybox-static iproute2 util-linux python3 cpio
 docker-registry skopeo umoci dnsmasq-base iperf3 hyperfine
 debootstrap openssl curl zstd podman uidmap"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi

DATA=build/lib/matchlock
KDIR=$DATA/kernel
if [ ! -f "$KDIR/vmlinuz" ] || [ "$(cat "$KDIR/version" 2>/dev/null)" != "$KVER" ]; then
	echo "setup: fetching linux-image-$KVER=$KPKG_VERSION with apt"
	tmp=$(mktemp -d)
	chmod 0755 "$tmp"
	(cd "$tmp" && apt-get download -q "linux-image-$KVER=$KPKG_VERSION")
	rm -rf "$KDIR.new" && mkdir -p "$KDIR.new/unpack"
	dpkg-deb -x "$tmp"/linux-image-*.deb "$KDIR.new/unpack"
	mv "$KDIR.new/unpack/boot/vmlinuz-$KVER" "$KDIR.new/vmlinuz"
	mv "$KDIR.new/unpack/lib/modules/$KVER" "$KDIR.new/modules"
	rm -rf "$KDIR.new/unpack" "$tmp"
	# The package ships no modules.dep (its postinst makes it); build it in our tree.
	mkdir -p "$KDIR.new/depmod/lib/modules"
	ln -s "$PWD/$KDIR.new/modules" "$KDIR.new/depmod/lib/modules/$KVER"
	depmod -b "$KDIR.new/depmod" "$KVER"
	rm -rf "$KDIR.new/depmod"
	echo "$KVER" >"$KDIR.new/version"
	chmod -R a+rX "$KDIR.new"
	rm -rf "$KDIR" && mv "$KDIR.new" "$KDIR"
fi
# Under sudo, hand the build tree back to the user who will run `make` next.
if [ -n "${SUDO_UID:-}" ] && [ "$SUDO_UID" != 0 ]; then
	chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" build
fi
echo "setup: ok (kernel $KVER in $KDIR)"
