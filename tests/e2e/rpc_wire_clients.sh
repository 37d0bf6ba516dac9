#!/bin/bash
# rpc_wire_clients: `matchlock rpc` against clients that stop reading, vanish mid-exec, or kill
# the server (rpc_wire_clients.py): bounded memory, nothing left running, gc after a kill -9.
# matchlock runs as the unprivileged test user.
. "$(dirname "$0")/../lib/harness.sh"
ML_ARGV=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' setpriv --reuid="$ML_USER" --regid="$ML_USER" \
	--init-groups --inh-caps=-all env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" \
	"$ML_BIN")
export ML_ARGV ML_HOME
timeout -k 10 1200 python3 "$REPO/tests/e2e/rpc_wire_clients.py"; rc=$?
[ "$rc" = 0 ] || { echo "--- rpc stderr:"; tail -20 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_no_qemu_left "no VM outlives the rpc processes"
[ "$rc" = 0 ] && done_testing
