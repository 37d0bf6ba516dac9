"""rpc_sdk_vfs: the workspace through the real Python SDK (run by rpc_sdk_vfs.sh as the test
user): wire block rules, SDK-local hooks driven by `file` events (safe hooks once, dangerous
hooks re-entrant), mutate hooks, host_fs mounts seen both ways, the files API under the
workspace."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from rpcwire import Checks  # noqa: E402
from matchlock import Client, Config, Sandbox  # noqa: E402
from matchlock.types import VFSHookRule, VFSInterceptionConfig  # noqa: E402

BIN = os.environ["ML_SDK_BIN"]
IMG = os.environ.get("ML_IMAGE", "matchlock/default:latest")
HOST = os.environ["ML_HOST_DIR"]
T = Checks("rpc_sdk_vfs")


def memory_workspace_hooks():
    runs = []
    sb = (Sandbox(IMG).with_workspace("/workspace").mount_memory("/workspace")
          .with_vfs_interception(VFSInterceptionConfig(rules=[
              VFSHookRule(phase="before", ops=["create"], path="/workspace/blocked.txt", action="block"),
              VFSHookRule(phase="before", ops=["write"], path="/workspace/mutate.txt",
                          mutate_hook=lambda req: b"mutated-by-hook"),
              VFSHookRule(phase="after", ops=["write"], path="/workspace/*", hook=lambda ev: runs.append(ev.path)),
          ])))
    with Client(Config(binary_path=BIN)) as c:
        c.launch(sb)
        try:
            c.write_file("/workspace/blocked.txt", b"x")
            T.ok("a wire block rule refuses write_file", False)
        except Exception as e:
            T.ok("a wire block rule refuses write_file: -32002 operation not permitted",
                 "[-32002]" in str(e) and "operation not permitted" in str(e), str(e))
        c.write_file("/workspace/ok.txt", b"fine")
        T.eq("write_file next to it works", b"fine", c.read_file("/workspace/ok.txt"))
        r = c.exec("touch /workspace/blocked.txt 2>&1; echo rc=$?")
        T.ok("the guest is refused too (EPERM)", "Operation not permitted" in r.stdout and "rc=1" in r.stdout, r.stdout)
        c.write_file("/workspace/mutate.txt", b"original")
        T.eq("a mutate hook rewrites the content", b"mutated-by-hook", c.read_file("/workspace/mutate.txt"))
        runs.clear()
        c.exec("echo one > /workspace/trigger.txt")
        time.sleep(1.0)
        T.eq("one small guest write gives exactly one safe-hook run", ["/workspace/trigger.txt"], runs)
        names = [f.name for f in c.list_files("/workspace")]
        T.eq("list_files under the workspace", ["mutate.txt", "ok.txt", "trigger.txt"], sorted(names))
        T.eq("exec with the workspace as working dir sees the files", "mutate.txt ok.txt trigger.txt",
             " ".join(sorted(c.exec("ls", working_dir="/workspace").stdout.split())))


def dangerous_hook_reenters():
    def dangerous(client, ev):
        client.exec("echo 1 >> /tmp/hook_runs; [ -f /workspace/hook.log ] || echo hook > /workspace/hook.log")
    sb = (Sandbox(IMG).with_workspace("/workspace").mount_memory("/workspace")
          .with_vfs_interception(VFSInterceptionConfig(rules=[
              VFSHookRule(phase="after", ops=["write"], path="/workspace/*", timeout_ms=2000, dangerous_hook=dangerous),
          ])))
    with Client(Config(binary_path=BIN)) as c:
        c.launch(sb)
        c.write_file("/workspace/trigger.txt", b"go")
        n = 0
        end = time.time() + 5
        while time.time() < end:
            n = int(c.exec("wc -l < /tmp/hook_runs 2>/dev/null || echo 0").stdout.strip() or 0)
            if n >= 2:
                break
            time.sleep(0.2)
        T.ok(f"a dangerous hook runs again on its own writes ({n} runs)", n >= 2, n)
        time.sleep(0.3)
        n2 = int(c.exec("wc -l < /tmp/hook_runs").stdout.strip() or 0)
        T.ok(f"... and settles ({n2} runs)", n2 <= 4, n2)
        T.eq("its write landed", "hook", c.read_file("/workspace/hook.log").decode().strip())


def host_fs():
    with open(os.path.join(HOST, "from-host.txt"), "w") as f:
        f.write("host says hi")
    sb = Sandbox(IMG).with_workspace("/workspace").mount_host_dir("/workspace/repo", HOST)
    with Client(Config(binary_path=BIN)) as c:
        c.launch(sb)
        r = c.exec("cat /workspace/repo/from-host.txt; echo from-guest > /workspace/repo/tmp.xyz; "
                   "mv /workspace/repo/tmp.xyz /workspace/repo/renamed.txt")
        T.eq("host_fs: the guest reads the host's file", "host says hi", r.stdout.strip())
        with open(os.path.join(HOST, "renamed.txt")) as f:
            T.eq("host_fs: the guest's write and atomic rename reach the host", "from-guest", f.read().strip())
        c.write_file("/workspace/repo/via-api.txt", b"api")
        with open(os.path.join(HOST, "via-api.txt")) as f:
            T.eq("host_fs: write_file lands in the host dir", "api", f.read())


def main():
    memory_workspace_hooks()
    dangerous_hook_reenters()
    host_fs()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
