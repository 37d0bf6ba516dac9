#!/bin/bash
# rpc_sdk_ts: `matchlock rpc` through the real TypeScript SDK (rpc_sdk_ts.js), found through
# $MATCHLOCK_TS_SDK (a built copy of the SDK: its dist/ and node_modules/). Without it the
# file says it skipped and counts nothing. The SDK copy and the script are copied into this
# test's own tmp dir (the originals may not be readable by the test user) and run as that user.
. "$(dirname "$0")/../lib/harness.sh"
if [ -z "${MATCHLOCK_TS_SDK:-}" ]; then
	echo "# SKIP rpc_sdk_ts: MATCHLOCK_TS_SDK is not set (a built copy of the matchlock TypeScript SDK)"
	exit 0
fi
if [ ! -f "$MATCHLOCK_TS_SDK/dist/index.js" ] || [ ! -d "$MATCHLOCK_TS_SDK/node_modules" ]; then
	fail "MATCHLOCK_TS_SDK=$MATCHLOCK_TS_SDK is a built SDK (dist/index.js and node_modules/ there)"
	done_testing
	exit 1
fi
command -v node >/dev/null || { fail "node is installed (MATCHLOCK_TS_SDK is set)"; done_testing; exit 1; }
D=$T_TMP/sdk
mkdir -p "$D/ts" "$D/bin"
cp -r "$MATCHLOCK_TS_SDK/dist" "$MATCHLOCK_TS_SDK/node_modules" "$MATCHLOCK_TS_SDK/package.json" "$D/ts/"
cp "$REPO/tests/e2e/rpc_sdk_ts.js" "$D/"
# the SDK drains the server's stderr and drops it: keep it for the report
printf '#!/bin/sh\nexec %s "$@" 2>>%s/rpc.stderr\n' "$ML_BIN" "$ML_HOME" >"$D/bin/matchlock"
chmod -R a+rX "$D" && chmod 0755 "$D/bin/matchlock"
as_user env ML_TS_SDK="$D/ts" ML_SDK_BIN="$D/bin/matchlock" ML_IMAGE="$ML_DEFAULT_IMAGE" \
	timeout -k 10 600 node "$D/rpc_sdk_ts.js"
rc=$?
[ "$rc" = 0 ] || { echo "--- rpc stderr:"; tail -30 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_no_qemu_left "no VM outlives the SDK's clients"
[ "$rc" = 0 ] && done_testing
