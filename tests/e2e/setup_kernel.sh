#!/bin/bash
# setup_kernel: scripts/kernel.sh takes the kernel linux-image-cloud-amd64 depends on today
# (no pinned version), keeps an already-unpacked kernel when apt cannot resolve or download
# one, and fails with one clear line when it has neither. apt is replaced by small fakes on
# PATH for the offline cases, so nothing here downloads.
. "$(dirname "$0")/../lib/harness.sh"
K=$REPO/build/lib/matchlock/kernel

want=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
check_eq "set-up unpacked the kernel the meta package depends on today" "linux-image-$(cat "$K/version")" "$want"
out=$(sh "$REPO/scripts/kernel.sh" "$REPO/build/lib/matchlock" 2>&1); rc=$?
check_eq "a second run is a no-op: exit 0" 0 "$rc"
check_contains "a second run is a no-op: says so" "already unpacked" "$out"

fake=$T_TMP/fakebin; mkdir -p "$fake"
data=$T_TMP/data; mkdir -p "$data"
cp -a "$K" "$data/kernel"

# apt knows nothing (offline, no lists): the unpacked kernel stays.
printf '#!/bin/sh\nexit 0\n' >"$fake/apt-cache"; chmod +x "$fake/apt-cache"
out=$(PATH=$fake:$PATH sh "$REPO/scripts/kernel.sh" "$data" 2>&1); rc=$?
check_eq "apt without the package, kernel unpacked: exit 0" 0 "$rc"
check_contains "apt without the package: keeps the unpacked kernel" "keeping the unpacked kernel $(cat "$K/version")" "$out"
check_eq "the unpacked kernel is untouched" "$(cat "$K/version")" "$(cat "$data/kernel/version")"

# apt names a newer kernel but cannot download it: the unpacked kernel stays.
printf '#!/bin/sh\necho "linux-image-cloud-amd64"\necho "  Depends: linux-image-9.9.9-1-cloud-amd64"\n' >"$fake/apt-cache"
printf '#!/bin/sh\necho "E: Failed to fetch" >&2\nexit 100\n' >"$fake/apt-get"; chmod +x "$fake/apt-get"
out=$(PATH=$fake:$PATH sh "$REPO/scripts/kernel.sh" "$data" 2>&1); rc=$?
check_eq "newer kernel not downloadable: exit 0" 0 "$rc"
check_contains "newer kernel not downloadable: keeps the unpacked one" "could not download linux-image-9.9.9-1-cloud-amd64" "$out"
check_eq "newer kernel not downloadable: nothing half-written" "" "$(ls -d "$data"/kernel.new 2>/dev/null)"

# Neither apt nor an unpacked kernel: one clear line, non-zero.
rm -rf "$data/kernel"
printf '#!/bin/sh\nexit 0\n' >"$fake/apt-cache"
PATH=$fake:$PATH sh "$REPO/scripts/kernel.sh" "$data" >/dev/null 2>"$T_TMP/err"; rc=$?
check_eq "no apt, no kernel: exit 1" 1 "$rc"
check_one_line "no apt, no kernel: one line on stderr" "$T_TMP/err"
check_contains "no apt, no kernel: says what to do" "run apt-get update" "$(cat "$T_TMP/err")"
done_testing
