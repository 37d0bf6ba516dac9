#!/bin/sh
# scripts/kernel.sh DATA_DIR - puts Debian's cloud kernel (vmlinuz + modules + modules.dep) into
# DATA_DIR/kernel, never into /boot. Called by setup.sh; tests/setup/kernel.sh drives it too.
#
# Which kernel: whatever `linux-image-cloud-amd64` depends on *today* (the archive drops old ABI
# packages when a kernel update lands, so a pinned version would break set-up within weeks).
# The initramfs cache is keyed by the kernel version, so a new kernel simply builds a new one.
# When apt cannot say (offline, no lists, a mirror without the package) and a kernel is already
# unpacked, that kernel is kept and we say so; with neither, set-up fails with one clear line.
#
# apt-get download runs as the invoking user (it needs no root; it writes only into a temp dir).
# Knob for tests: MATCHLOCK_KERNEL_META (default linux-image-cloud-amd64).
set -eu
DATA=$1
KDIR=$DATA/kernel
META=${MATCHLOCK_KERNEL_META:-linux-image-cloud-amd64}

have_kernel() { [ -f "$KDIR/vmlinuz" ] && [ -f "$KDIR/modules/modules.dep" ] && [ -s "$KDIR/version" ]; }

# The ABI package the meta package depends on now, e.g. linux-image-6.1.0-57-cloud-amd64.
want_pkg=$(apt-cache depends "$META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}') || want_pkg=
if [ -z "$want_pkg" ]; then
	if have_kernel; then
		echo "kernel: apt does not know $META here; keeping the unpacked kernel $(cat "$KDIR/version")"
		exit 0
	fi
	echo "kernel: apt cannot resolve $META and no kernel is unpacked in $KDIR (run apt-get update, or put one there)" >&2
	exit 1
fi
KVER=${want_pkg#linux-image-}
if have_kernel && [ "$(cat "$KDIR/version")" = "$KVER" ]; then
	echo "kernel: $KVER already unpacked"
	exit 0
fi

echo "kernel: fetching $want_pkg with apt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$KDIR.new"' EXIT
chmod 0755 "$tmp"
if ! (cd "$tmp" && apt-get download -q "$want_pkg" >/dev/null 2>"$tmp/err"); then
	if have_kernel; then
		echo "kernel: apt could not download $want_pkg ($(tail -1 "$tmp/err")); keeping the unpacked kernel $(cat "$KDIR/version")"
		exit 0
	fi
	echo "kernel: apt could not download $want_pkg: $(tail -1 "$tmp/err")" >&2
	exit 1
fi
rm -rf "$KDIR.new" && mkdir -p "$KDIR.new/unpack"
dpkg-deb -x "$tmp"/linux-image-*.deb "$KDIR.new/unpack"
mv "$KDIR.new/unpack/boot/vmlinuz-$KVER" "$KDIR.new/vmlinuz"
mv "$KDIR.new/unpack/lib/modules/$KVER" "$KDIR.new/modules"
rm -rf "$KDIR.new/unpack"
# The package ships no modules.dep (its postinst makes it); build it in our tree.
mkdir -p "$KDIR.new/depmod/lib/modules"
ln -s "$(cd "$KDIR.new/modules" && pwd)" "$KDIR.new/depmod/lib/modules/$KVER"
/sbin/depmod -b "$KDIR.new/depmod" "$KVER"
rm -rf "$KDIR.new/depmod"
echo "$KVER" >"$KDIR.new/version"
chmod -R a+rX "$KDIR.new"
rm -rf "$KDIR" && mv "$KDIR.new" "$KDIR"
echo "kernel: $KVER unpacked in $KDIR"
