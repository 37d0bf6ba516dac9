#!/bin/bash
# rpc_sdk_vfs: the workspace through `matchlock rpc`: VFS hooks and file events through the real
# Python SDK (rpc_sdk_vfs.py; skipped, counting nothing, without $MATCHLOCK_PY_SDK), and
# extra_disks (which no SDK builder exposes) on the wire with our client.
. "$(dirname "$0")/../lib/harness.sh"
D=$T_TMP/sdk
mkdir -p "$D/bin" "$D/host"
cp "$REPO/tests/lib/rpcwire.py" "$REPO/tests/e2e/rpc_sdk_vfs.py" "$D/"
printf '#!/bin/sh\nexec %s "$@" 2>>%s/rpc.stderr\n' "$ML_BIN" "$ML_HOME" >"$D/bin/matchlock"
chown "$ML_USER" "$D/host"
chmod -R a+rX "$D" && chmod 0755 "$D/bin/matchlock"

# --- extra_disks on the wire: a volume written through one VM, read read-only through the next
path=$(ml volume create wirevol --size 16 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
cat >"$D/disks.py" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.dirname(__file__))
from rpcwire import Wire, Checks
T = Checks("rpc_sdk_vfs")
argv, path = json.loads(sys.argv[1]), sys.argv[2]
for ro, cmd, want in ((False, "echo persisted > /data/f && cat /data/f", "persisted\n"),
                      (True, "cat /data/f; touch /data/g 2>&1 || true", "Read-only file system")):
    w = Wire(argv)
    res, _ = w.call("create", {"image": "matchlock/default:latest",
                               "extra_disks": [{"host_path": path, "guest_mount": "/data", "readonly": ro}]}, timeout=120)
    T.ok(f"extra_disks create (readonly={ro})", "result" in (res or {}), res)
    res, _ = w.call("exec", {"command": cmd})
    import base64
    out = base64.b64decode(res["result"]["stdout"]).decode() if res and "result" in res else ""
    T.ok(f"extra_disks: {'read-only, the first write kept' if ro else 'a volume mounted at /data'}", want in out, out)
    w.call("close", {"timeout_seconds": 5}, timeout=30); w.close_stdin(); w.wait(30)
w = Wire(argv)
res, _ = w.call("create", {"image": "matchlock/default:latest", "extra_disks": [{"host_path": "/nonexistent.ext4", "guest_mount": "/data"}]})
T.ok("extra_disks: a missing file is -32000 invalid extra disk config",
     (res or {}).get("error", {}).get("code") == -32000 and "invalid extra disk config" in res["error"]["message"], res)
w.close_stdin(); w.wait(10)
sys.exit(T.done())
PY
argv=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' setpriv --reuid="$ML_USER" --regid="$ML_USER" \
	--init-groups --inh-caps=-all env -i PATH=/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" "$ML_BIN" rpc)
python3 "$D/disks.py" "$argv" "$path"; rc1=$?

# --- hooks through the real SDK
if [ -z "${MATCHLOCK_PY_SDK:-}" ]; then
	echo "# SKIP rpc_sdk_vfs (SDK part): MATCHLOCK_PY_SDK is not set"
	rc2=0
else
	mkdir -p "$D/pysdk" && cp -r "$MATCHLOCK_PY_SDK/." "$D/pysdk/" && chmod -R a+rX "$D/pysdk"
	as_user env XDG_CACHE_HOME="$ML_CACHE" PYTHONPATH="$D/pysdk" ML_SDK_BIN="$D/bin/matchlock" ML_HOST_DIR="$D/host" \
		ML_IMAGE="$ML_DEFAULT_IMAGE" timeout -k 10 600 /usr/bin/python3 "$D/rpc_sdk_vfs.py"; rc2=$?
fi
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] || { echo "--- rpc stderr:"; tail -20 "$ML_HOME/rpc.stderr" 2>/dev/null; }
check_no_qemu_left "no VM left"
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && done_testing
