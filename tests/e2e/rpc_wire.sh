#!/bin/bash
# rpc_wire: `matchlock rpc` spoken to line by line by a stdlib Python client (rpc_wire.py):
# the protocol's exact error objects, method classes, each method against a real VM, big
# lines, a second create, close and EOF. matchlock runs as the unprivileged test user.
. "$(dirname "$0")/../lib/harness.sh"
ML_RPC_ARGV=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' setpriv --reuid="$ML_USER" --regid="$ML_USER" \
	--init-groups --inh-caps=-all env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" \
	"$ML_BIN" rpc)
export ML_RPC_ARGV ML_HOME
python3 "$REPO/tests/e2e/rpc_wire.py"; rc=$?
[ "$rc" = 0 ] || { echo "--- rpc stderr:"; tail -20 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_no_qemu_left "no VM outlives the rpc processes"
[ "$rc" = 0 ] && done_testing
