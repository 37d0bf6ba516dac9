#!/bin/bash
# rpc_sdk_python: `matchlock rpc` through the real Python SDK (rpc_sdk_python.py), found through
# $MATCHLOCK_PY_SDK (a folder holding the `matchlock` package). Without it the file says it
# skipped and counts nothing. The SDK and the script are copied into this test's own tmp dir
# (the checkout may not be readable by the test user) and run, as the test user, on the host
# side of the fake internet (tests/lib/networld.sh), where the guests' DNS servers live.
. "$(dirname "$0")/../lib/harness.sh"
if [ -z "${MATCHLOCK_PY_SDK:-}" ]; then
	echo "# SKIP rpc_sdk_python: MATCHLOCK_PY_SDK is not set (a folder holding the matchlock Python SDK package)"
	exit 0
fi
if [ ! -f "$MATCHLOCK_PY_SDK/matchlock/client.py" ]; then
	fail "MATCHLOCK_PY_SDK=$MATCHLOCK_PY_SDK holds the SDK (no matchlock/client.py there)"
	done_testing
	exit 1
fi
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
D=$T_TMP/sdk
mkdir -p "$D/pysdk" "$D/bin"
cp -r "$MATCHLOCK_PY_SDK/." "$D/pysdk/"   # the package and its dist-info (the SDK reads its version)
cp "$REPO/tests/e2e/rpc_sdk_python.py" "$REPO/tests/lib/rpcwire.py" "$D/"
# the SDK spawns `<binary_path> rpc` with stderr to /dev/null: keep the server's diagnostics
printf '#!/bin/sh\nexec %s "$@" 2>>%s/rpc.stderr\n' "$ML_BIN" "$ML_HOME" >"$D/bin/matchlock"
chmod -R a+rX "$D" && chmod 0755 "$D/bin/matchlock"
as_user_world env XDG_CACHE_HOME="$ML_CACHE" PYTHONPATH="$D/pysdk" ML_SDK_BIN="$D/bin/matchlock" ML_IMAGE="$ML_DEFAULT_IMAGE" \
	timeout -k 10 900 /usr/bin/python3 "$D/rpc_sdk_python.py"
rc=$?
[ "$rc" = 0 ] || { echo "--- rpc stderr:"; tail -30 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_no_qemu_left "no VM outlives the SDK's clients"
[ "$rc" = 0 ] && done_testing
