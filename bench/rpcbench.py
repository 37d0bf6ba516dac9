"""bench/rpcbench.py - the measuring side of bench/rpc.sh. Results on stdout, one per line.

    rpcbench.py BIN MLVM rtt N
        Three VMs of the same kind (1 vCPU, 512 MiB, a 1 GiB scratch disk, the default image,
        guest network on, execs with the image's environment): one driven by tests/tools/mlvm
        (MLVM_LIKE_RUN=1: the library's own exec path, what `run` uses), one by our stdlib
        wire client (tests/lib/rpcwire.py) through `BIN rpc`,
        one by the real Python SDK (client.exec("true"), if the `matchlock` package imports).
        Round trips of `true` are taken in rotation - one of each path per round, the order
        turning every round - so every path sees the same load on a shared machine; this is
        repeated on BENCH_RPC_ROUNDS (default 3) fresh sets of VMs, because one VM can be 20 %
        faster than the next on a shared host, and the samples are pooled. Prints
        `<path> p50_us=.. p99_us=..` for internal (argv ["true"], as `run -- true` sends),
        internal-sh (["sh","-c","true"], what the server asks the agent for), wire, sdk; then
        `wire-status p50_us=..` (the wire round trip of `status`, which the server answers itself:
        the JSON-RPC path without the guest) and `guest-spawn avg_us=..` (the guest's own
        fork+exec of /bin/true, median over the rounds), and `wire-rounds` / `sdk-rounds`: each
        round's p50 ratio against internal-sh.
    rpcbench.py BIN MLVM create K
        K rounds, alternating: `BIN run -- true` (spawn to exit) and, through the SDK, spawn +
        create + first exec("true") (close not counted; also reported with it). Medians:
        `run_s=.. sdk_first_exec_s=.. sdk_with_close_s=..`.
"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
IMG = os.environ.get("BENCH_IMAGE", "matchlock/default:latest")
RES = {"cpus": 1, "memory_mb": 512, "disk_size_mb": 1024}
WARM = 20


def pct(v):
    v = sorted(v)
    return f"p50_us={v[len(v) // 2]} p99_us={v[(len(v) * 99) // 100]}"


def us_since(t0):
    return int((time.monotonic() - t0) * 1e6)


def have_sdk():
    try:
        import matchlock  # noqa: F401
        return True
    except ImportError:
        return False


def sdk_sandbox():
    from matchlock import Sandbox
    return Sandbox(IMG).with_cpus(RES["cpus"]).with_memory(RES["memory_mb"]).with_disk_size(RES["disk_size_mb"]).options()


class Internal:
    """mlvm rttpipe: it times each exec itself (no pipe in the figure)."""

    def __init__(self, mlvm):
        self.p = subprocess.Popen([mlvm, "rttpipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            sys.exit("rpcbench: mlvm did not start")

    def ask(self, what):
        self.p.stdin.write(what + "\n")
        self.p.stdin.flush()
        t = int(self.p.stdout.readline())
        if t < 0:
            sys.exit(f"rpcbench: mlvm {what} failed")
        return t

    def close(self):
        self.p.stdin.close()
        self.p.wait(60)


def rtt_round(binary, mlvm, n, got):
    """Fresh VMs, one per path; n samples of each, in turning order, appended to got."""
    from rpcwire import Wire
    internal = Internal(mlvm)
    w = Wire([binary, "rpc"])
    res, _ = w.call("create", {"image": IMG, "resources": RES}, timeout=300)
    if not res or "result" not in res:
        sys.exit(f"rpcbench: create failed: {res}")
    client = None
    if have_sdk():
        from matchlock import Client, Config
        client = Client(Config(binary_path=binary))
        client.start()
        client.create(sdk_sandbox())

    def wire_one():
        t0 = time.monotonic()
        r, _ = w.call("exec", {"command": "true"})
        t = us_since(t0)
        if r["result"]["exit_code"] != 0:
            sys.exit(f"rpcbench: wire exec: {r}")
        return t

    def sdk_one():
        t0 = time.monotonic()
        r = client.exec("true")
        t = us_since(t0)
        if r.exit_code != 0:
            sys.exit(f"rpcbench: sdk exec: {r}")
        return t

    def status_one():
        t0 = time.monotonic()
        w.call("status")
        return us_since(t0)

    paths = {"internal": lambda: internal.ask("true"), "internal-sh": lambda: internal.ask("sh"), "wire": wire_one,
             "wire-status": status_one}
    if client:
        paths["sdk"] = sdk_one
    names = list(paths)
    mine = {k: [] for k in names}
    for i in range(WARM + n):
        for k in names[i % len(names):] + names[:i % len(names)]:
            t = paths[k]()
            if i >= WARM:
                mine[k].append(t)
    for k in names:
        got.setdefault(k, []).extend(mine[k])
    got.setdefault("guest-spawn", []).append(internal.ask("spawn"))
    med = {k: statistics.median(v) for k, v in mine.items()}
    if client:
        client.close()
    w.call("close", {"timeout_seconds": 1})
    w.close_stdin()
    w.wait(30)
    internal.close()
    return med


def rtt(binary, mlvm, n):
    rounds = max(1, int(os.environ.get("BENCH_RPC_ROUNDS", "3")))
    got, per = {}, []
    for _ in range(rounds):
        per.append(rtt_round(binary, mlvm, max(1, n // rounds), got))
    for k in ["internal", "internal-sh", "wire", "wire-status", "sdk"]:
        print(f"{k} {pct(got[k])}" if k in got else f"{k} skipped (the matchlock Python SDK is not on PYTHONPATH)")
    print(f"guest-spawn avg_us={statistics.median(got['guest-spawn'])}")
    # how much the ratio moves from one set of VMs to the next (VM placement on a shared host)
    for k in ["wire", "sdk"]:
        if k in got:
            print(f"{k}-rounds ratios=" + ",".join(f"{m[k] / m['internal-sh']:.2f}" for m in per))


def create(binary, k):
    from matchlock import Client, Config
    run, first, full = [], [], []
    argv = [binary, "run", "--image", IMG, "--cpus", "1", "--memory", "512", "--disk-size", "1024", "--", "true"]
    for _ in range(k):
        t0 = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run.append(time.monotonic() - t0)
        t0 = time.monotonic()
        c = Client(Config(binary_path=binary))
        c.start()
        c.create(sdk_sandbox())
        r = c.exec("true")
        first.append(time.monotonic() - t0)
        c.close()
        full.append(time.monotonic() - t0)
        if r.exit_code != 0:
            sys.exit(f"rpcbench: exec true: {r}")
    m = statistics.median
    print(f"run_s={m(run):.3f} sdk_first_exec_s={m(first):.3f} sdk_with_close_s={m(full):.3f}")


def main():
    binary, mlvm, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if mode == "rtt":
        rtt(binary, mlvm, n)
    elif mode == "create":
        if not have_sdk():
            print("create skipped (the matchlock Python SDK is not on PYTHONPATH)")
            return
        create(binary, n)
    else:
        sys.exit(f"rpcbench: unknown mode {mode}")


if __name__ == "__main__":
    main()
