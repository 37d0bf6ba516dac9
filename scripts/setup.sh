#!/bin/sh
# scripts/setup.sh [install] - idempotent machine set-up for building, running and testing
# matchlock on Debian 12, as root or as a user with sudo (a fresh root-only machine such as a
# container or a CI runner has no sudo, so we only use it when we are not root).
#   setup.sh          installs the Debian packages (root) and unpacks the guest kernel into the
#                     build tree (build/lib/matchlock/kernel, as the invoking user: see kernel.sh)
#   setup.sh install  `make install` as root (PREFIX=/usr/local unless PREFIX is set)
# Safe to run again: every step checks before it acts.
set -eu
cd "$(dirname "$0")/.."

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "setup: this step needs root and sudo is not installed: run it as root" >&2
		exit 1
	fi
}

if [ "${1:-}" = install ]; then
	as_root make -s install PREFIX="${PREFIX:-/usr/local}"
	exit 0
fi

# Build, run, and test dependencies. The test world (registry, DNS, debootstrap image, TLS
# servers, the SDKs' runtimes) and the benchmarks' baselines are here too, so `make test` and
# `make bench` need nothing else (zsh and fish: the completion scripts are tested in them).
PKGS="build-essential pkg-config clang libclang-rt-14-dev
 qemu-system-x86 libslirp-dev libglib2.0-dev libjansson-dev libgnutls28-dev libfuse3-dev
 libarchive-dev libcurl4-gnutls-dev libseccomp-dev libext2fs-dev libsqlite3-dev libzstd-dev
 libnghttp2-dev libhttp-parser-dev
 zlib1g-dev libcmocka-dev e2fsprogs kmod busybox-static iproute2 util-linux python3 cpio
 docker-registry skopeo umoci dnsmasq-base iperf3 hyperfine
 debootstrap openssl curl zstd podman uidmap git
 mitmproxy wrk nginx-light fio zsh fish"

# Node.js for the TypeScript SDK's tests: Debian's, unless one is already installed (NodeSource's
# nodejs bundles npm and conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing:$missing"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

sh scripts/kernel.sh build/lib/matchlock
echo "setup: ok (kernel $(cat build/lib/matchlock/kernel/version))"
