#!/bin/bash
# rpc_sdk_network: network interception through `matchlock rpc` and the real Python SDK
# (rpc_sdk_network.py, the SDK found through $MATCHLOCK_PY_SDK; without it the file says it
# skipped): secrets, static hook rules and SDK callback hooks, in the fake internet with its TLS
# servers (tests/lib/networld.sh), whose logs prove what arrived; then, on the wire, the network
# `event` notifications. Runs as the test user on the host side of the world, like
# rpc_sdk_python.sh.
. "$(dirname "$0")/../lib/harness.sh"
if [ -z "${MATCHLOCK_PY_SDK:-}" ]; then
	echo "# SKIP rpc_sdk_network: MATCHLOCK_PY_SDK is not set (a folder holding the matchlock Python SDK package)"
	exit 0
fi
if [ ! -f "$MATCHLOCK_PY_SDK/matchlock/client.py" ]; then
	fail "MATCHLOCK_PY_SDK=$MATCHLOCK_PY_SDK holds the SDK (no matchlock/client.py there)"
	done_testing
	exit 1
fi
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
world_tls_up || { fail "the TLS servers of the test world come up"; done_testing; exit 1; }
D=$T_TMP/sdk
mkdir -p "$D/pysdk" "$D/bin"
cp -r "$MATCHLOCK_PY_SDK/." "$D/pysdk/"
cp "$REPO/tests/e2e/rpc_sdk_network.py" "$REPO/tests/lib/rpcwire.py" "$D/"
printf '#!/bin/sh\nexec %s "$@" 2>>%s/rpc.stderr\n' "$ML_BIN" "$ML_HOME" >"$D/bin/matchlock"
chmod -R a+rX "$D" && chmod 0755 "$D/bin/matchlock"
VALUE=sdk-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
# SSL_CERT_FILE: matchlock (spawned by the SDK) verifies the world's upstreams against its CA
as_user_world env XDG_CACHE_HOME="$ML_CACHE" PYTHONPATH="$D/pysdk" ML_SDK_BIN="$D/bin/matchlock" \
	ML_IMAGE="$ML_DEFAULT_IMAGE" SSL_CERT_FILE="$W_TLS_CA" ML_SECRET="$VALUE" MATCHLOCK_LOG=debug \
	timeout -k 10 900 /usr/bin/python3 "$D/rpc_sdk_network.py"
rc=$?
[ "$rc" = 0 ] || { echo "--- rpc stderr:"; tail -30 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_contains "echoplain received the secret's value for echo.test" "auth=Bearer $VALUE" "$(cat "$W_DIR/web-echoplain.log")"
check_eq "web.test's servers never received the value or a placeholder" 0 \
	"$(cat "$W_DIR"/web-web.log "$W_DIR"/http-web.log 2>/dev/null | grep -c -e "$VALUE" -e SANDBOX_SECRET_)"
check_eq "the blocked requests never arrived (echo.test /admin, /blocked)" 0 \
	"$(grep -c -e '/admin' -e '/blocked' "$W_DIR/web-echoplain.log")"
check_eq "the value is nowhere in matchlock's stderr (debug logging) or the VMs' state" 0 \
	"$( (cat "$ML_HOME/rpc.stderr"; cat -v "$ML_HOME"/.matchlock/vms/*/* "$ML_HOME"/.matchlock/vms/*/*/* 2>/dev/null) | grep -c -- "$VALUE")"
check_no_qemu_left "no VM outlives the SDK's clients"
[ "$rc" = 0 ] && done_testing
