#!/bin/bash
# bench/pull.sh - issue 4's figures for `make bench`, sourced by bench/run.sh (uses its ML, IMG,
# W, now, median, ratio, row) or run alone (then it defines them). Same run, same loopback
# registry, same image (Debian bookworm minbase + python3, tests/lib/mkdebian.sh, cached):
#  1. cold pull + rootfs: `matchlock pull` + the rootfs build (build/tests/tools/mlrootfs) against
#     rootless `podman pull` (vfs storage) and `skopeo copy` + `umoci unpack --rootless`;
#  2. warm start: `run --image <pulled image> -- true` against `run --image <embedded> -- true`.
# Knobs: BENCH_PULLS (cold samples each, default 3), BENCH_WARM (warm samples, default 5).
# Needs root for the image build (debootstrap) and for running podman as the unprivileged test
# user (rootless podman wants /etc/subuid entries: added for that user when missing).
set -u
declare -F row >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PN=${BENCH_PULLS:-3}
WN=${BENCH_WARM:-5}
PB=$W/pull
mkdir -p "$PB" && chmod 0755 "$W" "$PB"
PUSER=${BENCH_PODMAN_USER:-mltest}

pb_main() {
	layout=$(sh "$REPO/tests/lib/mkdebian.sh") || { echo "# pull bench skipped: no Debian image"; return 0; }
	# The registry, on loopback, as whoever runs the bench (storage under $PB).
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$PB/reg"
	printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
		"$PB/reg" "$port" >"$PB/reg.yml"
	docker-registry serve "$PB/reg.yml" >"$PB/reg.log" 2>&1 &
	rp=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
	R=127.0.0.1:$port
	REF=$R/debian/python:bookworm
	skopeo copy -q --dest-tls-verify=false "oci:$layout:bookworm" "docker://$REF" || { kill $rp; echo "# pull bench: push failed"; return 0; }
	mb=$(du -sm "$layout" | cut -f1)

	# --- ours: pull + rootfs build, fresh store each time ---
	for i in $(seq "$PN"); do
		c=$PB/ours-$i
		mkdir -p "$c"
		s=$(now)
		XDG_CACHE_HOME=$c $ML pull "$REF" >/dev/null 2>"$PB/ours.err" || { echo "# pull failed: $(cat "$PB/ours.err")"; break; }
		e=$(now)
		rb=$(XDG_CACHE_HOME=$c "$REPO/build/tests/tools/mlrootfs" "$REF" 2>>"$PB/ours.err" | sed -n 's/.*build_s=\([0-9.]*\).*/\1/p')
		[ -n "$rb" ] || { echo "# rootfs build failed: $(tail -1 "$PB/ours.err")"; break; }
		echo "$e - $s + $rb" | bc
		rm -rf "$c"
	done >"$PB/ours"

	# --- rootless podman, vfs storage, fresh storage each time ---
	pod=""
	if command -v podman >/dev/null && id "$PUSER" >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ]; then
			grep -q "^$PUSER:" /etc/subuid || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$PUSER"
			asuser() { setpriv --reuid="$PUSER" --regid="$PUSER" --init-groups env -i PATH=/usr/bin:/bin HOME="$PB/podhome" XDG_RUNTIME_DIR="$PB/podxdg" "$@"; }
		else
			asuser() { env HOME="$PB/podhome" XDG_RUNTIME_DIR="$PB/podxdg" "$@"; }
		fi
		mkdir -p "$PB/podhome" "$PB/podxdg" && chmod 0700 "$PB/podxdg"
		[ "$(id -u)" = 0 ] && chown "$PUSER" "$PB/podhome" "$PB/podxdg"
		for i in $(seq "$PN"); do
			st=$PB/pod-$i
			mkdir -p "$st" && { [ "$(id -u)" != 0 ] || chown "$PUSER" "$st"; }
			s=$(now)
			asuser podman --root "$st/root" --runroot "$st/run" --storage-driver vfs pull -q --tls-verify=false "$REF" \
				>/dev/null 2>"$PB/pod.err" || { echo "# podman pull failed: $(tail -2 "$PB/pod.err")" >&2; pod=fail; break; }
			e=$(now)
			echo "$e - $s" | bc
			asuser podman --root "$st/root" --runroot "$st/run" --storage-driver vfs system reset -f >/dev/null 2>&1
			rm -rf "$st"
		done >"$PB/pod"
	else
		pod=missing
	fi

	# --- skopeo copy + umoci unpack --rootless ---
	for i in $(seq "$PN"); do
		s=$(now)
		skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$PB/sk-$i:bookworm" >/dev/null 2>"$PB/sk.err" &&
			umoci unpack --rootless --image "$PB/sk-$i:bookworm" "$PB/bundle-$i" >/dev/null 2>>"$PB/sk.err" ||
			{ echo "# skopeo/umoci failed: $(tail -2 "$PB/sk.err")" >&2; break; }
		e=$(now)
		echo "$e - $s" | bc
		chmod -R u+rwX "$PB/bundle-$i" 2>/dev/null
		rm -rf "$PB/sk-$i" "$PB/bundle-$i"
	done >"$PB/sk"

	o=$(median <"$PB/ours")
	if [ -z "$pod" ] && [ -s "$PB/pod" ]; then
		p=$(median <"$PB/pod")
		row "cold pull+rootfs ${mb} MB py (s)" "$o" "$p" "rootless podman pull, vfs" "$(ratio "$o" "$p")" "<= 0.7"
	else
		row "cold pull+rootfs ${mb} MB py (s)" "$o" "-" "rootless podman pull: ${pod:-no data}" "-" "<= 0.7"
	fi
	if [ -s "$PB/sk" ]; then
		k=$(median <"$PB/sk")
		row "cold pull+rootfs ${mb} MB py (s)" "$o" "$k" "skopeo copy + umoci unpack --rootless" "$(ratio "$o" "$k")" "-"
	fi

	# --- warm start: the pulled image vs the embedded one ---
	$ML pull "$REF" >/dev/null 2>&1
	$ML run --image "$REF" -- true >/dev/null 2>&1
	$ML run --image "$IMG" -- true >/dev/null 2>&1
	for i in $(seq "$WN"); do
		s=$(now); $ML run --image "$REF" -- true >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc >>"$PB/warm-pulled"
		s=$(now); $ML run --image "$IMG" -- true >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc >>"$PB/warm-default"
	done
	a=$(median <"$PB/warm-pulled"); b=$(median <"$PB/warm-default")
	d=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%+.0f ms", (a - b) * 1000}')
	row "warm start pulled image (s)" "$a" "$b" "run of the embedded image; $d" "$(ratio "$a" "$b")" "<= +50 ms"
	kill $rp 2>/dev/null
	wait $rp 2>/dev/null
}
pb_main
