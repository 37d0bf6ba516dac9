# tests/lib/harness.sh - sourced by every end-to-end test.
#
# matchlock always runs as an unprivileged user here (rootless is proven, not claimed): the
# harness (root) installs the build into a scratch prefix and runs the binary with setpriv as
# the user `mltest`. Each test file has its own HOME (its own VM state, so files running in
# parallel do not see each other's VMs) and all share one cache (XDG_CACHE_HOME), so the image
# store, rootfs files and initramfs are built once per run.
set -u

: "${ML_TEST_ROOT:=/tmp/matchlock-test}"
ML_USER=mltest
ML_PREFIX=$ML_TEST_ROOT/prefix
ML_CACHE=$ML_TEST_ROOT/cache
ML_BIN=$ML_PREFIX/bin/matchlock
ML_DEFAULT_IMAGE=matchlock/default:latest
REPO=$(cd "$(dirname "$0")/../.." && pwd)
T_FAILS=0
T_PASSES=0
T_NAME=$(basename "$0" .sh)
T_TMP=$(mktemp -d "$ML_TEST_ROOT/tmp.$T_NAME.XXXXXX")
chmod 0777 "$T_TMP"
ML_HOME=$T_TMP/home
mkdir -p "$ML_HOME" && chown "$ML_USER:$ML_USER" "$ML_HOME" && chmod 0700 "$ML_HOME"
trap 'rm -rf "$T_TMP"' EXIT

# ml ARGS...: run matchlock as the unprivileged user. Extra env: ML_ENV="K=V K2=V2".
ml() {
	# shellcheck disable=SC2086
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$ML_BIN" "$@"
}

# ml_bg ARGS...: ml in the background; ML_PID is matchlock's own pid (setpriv and env exec it),
# so signals sent to it reach matchlock (a backgrounded shell function would be a subshell).
ml_bg() {
	# shellcheck disable=SC2086
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$ML_BIN" "$@" &
	ML_PID=$!
}

# wait_guest_running: until a VM of this test has printed the agent's hello (max 30 s).
wait_guest_running() {
	for _ in $(seq 1 120); do
		grep -qs "agent hello" "$ML_HOME"/.matchlock/vms/*/logs/vm.log && return 0
		sleep 0.25
	done
	return 1
}

# as_user CMD...: run any command as the unprivileged user (same env rules as ml).
as_user() {
	# shellcheck disable=SC2086
	setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" ${ML_ENV:-} "$@"
}

# private_cache NAME: point this file's matchlock at an image store of its own (counts,
# listings and completions of the store must not see other test files' images).
private_cache() {
	ML_CACHE=$T_TMP/$1
	mkdir -p "$ML_CACHE" && chown "$ML_USER:$ML_USER" "$ML_CACHE" && chmod 0700 "$ML_CACHE"
}

ok() { T_PASSES=$((T_PASSES + 1)); printf 'ok - %s: %s\n' "$T_NAME" "$1"; }
fail() { T_FAILS=$((T_FAILS + 1)); printf 'not ok - %s: %s\n' "$T_NAME" "$1"; }

# check DESC WANT GOT
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1 (wanted [$2], got [$3])"; fi
}
# check_contains DESC NEEDLE HAYSTACK
check_contains() {
	case "$3" in *"$2"*) ok "$1" ;; *) fail "$1 (wanted to see [$2] in [$(printf '%s' "$3" | head -c 600)])" ;; esac
}
check_not_contains() {
	case "$3" in *"$2"*) fail "$1 (did not want [$2] in [$(printf '%s' "$3" | head -c 600)])" ;; *) ok "$1" ;; esac
}

# one_line DESC FILE: the error output is exactly one non-empty line
check_one_line() {
	n=$(grep -c . "$2" || true)
	if [ "$n" = 1 ]; then ok "$1"; else fail "$1 (wanted one line on stderr, got $n: $(head -c 400 "$2"))"; fi
}

# No QEMU of this test file (its VMs live under its own HOME) may outlive what started it.
check_no_qemu_left() {
	sleep 0.5
	left=$(ps -u "$ML_USER" -o args= 2>/dev/null | grep qemu-system | grep -c "$ML_HOME/" || true)
	check_eq "$1" 0 "$left"
}

done_testing() {
	printf '# %s: %d passed, %d failed\n' "$T_NAME" "$T_PASSES" "$T_FAILS"
	[ "$T_FAILS" = 0 ]
}
