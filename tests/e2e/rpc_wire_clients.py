"""rpc_wire_clients: `matchlock rpc` against clients that misbehave, on the wire:
  * a client that stops reading stdout while an exec_stream produces ~100 MiB: the server's
    memory stays bounded (the guest is slowed down, not buffered), and once the client reads
    again every byte arrives, in order, intact;
  * a client killed (SIGKILL) mid-exec: its pipes close, the server closes the VM, records it
    stopped and exits; no QEMU is left;
  * the server itself killed with SIGKILL: its QEMU dies with it (parent-death signal), the
    record still says running with the dead pid, and `matchlock gc` cleans what it left.
Run by rpc_wire_clients.sh (as root; matchlock runs as the test user)."""
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
from rpcwire import Checks, Wire  # noqa: E402

ML = json.loads(os.environ["ML_ARGV"])     # setpriv ... matchlock (append the command)
HOME = os.environ["ML_HOME"]
IMG = os.environ.get("ML_IMAGE", "matchlock/default:latest")
VMS = os.path.join(HOME, ".matchlock", "vms")
T = Checks("rpc_wire_clients")


def wire():
    return Wire(ML + ["rpc"], stderr_path=os.path.join(HOME, "rpc.stderr"))


def record(vm):
    with open(os.path.join(VMS, vm, "vm.json")) as f:
        return json.load(f)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return -1


def gone(pid):
    """No such process, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pid, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end and not gone(pid):
        time.sleep(0.1)
    return gone(pid)


def qemus():
    out = subprocess.run(["ps", "-e", "-o", "args="], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if "qemu-system" in l and HOME + "/" in l]


def wait_no_qemu(secs):
    end = time.monotonic() + secs
    while time.monotonic() < end and qemus():
        time.sleep(0.1)
    return qemus()


def create(w):
    res, _ = w.call("create", {"image": IMG, "resources": {"memory_mb": 256}}, timeout=120)
    return (res or {}).get("result", {}).get("id", "")


# ------------------------------------------------------------------ a reader that stalls
BLOCKS = 100            # 100 x (a "block N" line + 1 MiB of random bytes) = ~100 MiB
RSS_BOUND = 24 << 10    # KiB the server may grow while its client does not read


def stream_digest(blob):
    h = hashlib.sha256()
    for i in range(1, BLOCKS + 1):
        h.update(f"block {i}\n".encode() + blob)
    return h.hexdigest(), sum(len(f"block {i}\n") for i in range(1, BLOCKS + 1)) + BLOCKS * len(blob)


def slow_reader():
    w = wire()
    vm = create(w)
    T.ok("create", vm.startswith("vm-"), vm)
    if not vm:
        return w.kill()
    blob = os.urandom(1 << 20)
    w.call("write_file", {"path": "/tmp/blob", "content": base64.b64encode(blob).decode()})
    want, want_len = stream_digest(blob)
    rss0 = rss_kib(w.p.pid)
    rid = w.request("exec_stream", {"command": f"for i in $(seq {BLOCKS}); do echo \"block $i\"; cat /tmp/blob; done"})
    h, total = hashlib.sha256(), 0

    def take(m):
        nonlocal total
        if m and m.get("method") == "exec_stream.stdout" and m["params"].get("id") == rid:
            chunk = base64.b64decode(m["params"]["data"])
            h.update(chunk)
            total += len(chunk)
            return True
        return False

    # read the first 4 MiB to learn how fast the guest produces, then stop reading long enough
    # for an unbounded server to have buffered twice the bound
    t0 = time.monotonic()
    while total < 4 << 20 and take(w.recv(60)):
        pass
    rate = total / max(time.monotonic() - t0, 0.001)
    stall = min(max(2 * RSS_BOUND * 1024 / rate, 8), 120)
    samples, t0 = [], time.monotonic()
    while time.monotonic() - t0 < stall:
        samples.append(rss_kib(w.p.pid))
        time.sleep(0.25)
    peak, late = max(samples), samples[-8:]
    T.ok(f"not reading for {stall:.0f}s (the guest streams {rate / 1e6:.1f} MB/s): the server's RSS stays bounded "
         f"({rss0 // 1024} MiB before, {peak // 1024} MiB peak; bound +{RSS_BOUND // 1024} MiB)",
         peak - rss0 < RSS_BOUND, samples)
    T.ok(f"not reading: the server's RSS is flat at the end of the stall ({min(late) // 1024}..{max(late) // 1024} MiB)",
         max(late) - min(late) < 2 * 1024, late)
    # read again: everything arrives, in order
    res, t1 = None, time.monotonic()
    while res is None and time.monotonic() - t1 < 600:
        m = w.recv(60)
        if m is None:
            break
        if not take(m) and m.get("id") == rid:
            res = m
    secs = time.monotonic() - t1
    T.eq("reading again: the stream ends with exit 0", 0, (res or {}).get("result", {}).get("exit_code"))
    T.ok(f"reading again: all {total} bytes arrive, in order, intact ({(total - 4e6) / max(secs, 0.001) / 1e6:.1f} MB/s)",
         h.hexdigest() == want and total == want_len, (total, want_len))
    res, _ = w.call("exec", {"command": "echo unharmed"})
    T.eq("the VM is unharmed", "dW5oYXJtZWQK", (res or {}).get("result", {}).get("stdout"))
    res, _ = w.call("close", {"timeout_seconds": 2}, timeout=30)
    w.close_stdin()
    T.eq("close: the server exits 0", 0, w.wait(30))


# ------------------------------------------------------------------ a client killed mid-exec
CLIENT = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from rpcwire import Wire
w = Wire(json.loads(sys.argv[2]), stderr_path=sys.argv[3])
res, _ = w.call("create", {"image": sys.argv[4]}, timeout=120)
vm = (res or {}).get("result", {}).get("id", "")
rid = w.request("exec_stream", {"command": "echo started; sleep 600"})
first = w.recv(60)
print(json.dumps({"vm": vm, "pid": w.p.pid, "first": first}), flush=True)
time.sleep(600)
"""


def killed_client():
    c = subprocess.Popen([sys.executable, "-c", CLIENT, LIB, json.dumps(ML + ["rpc"]), os.path.join(HOME, "rpc.stderr"), IMG],
                         stdout=subprocess.PIPE, text=True)
    line = c.stdout.readline()
    try:
        info = json.loads(line)
    except ValueError:
        info = {}
    vm, pid = info.get("vm", ""), info.get("pid", 0)
    T.ok("killed client: its exec is running", vm.startswith("vm-") and (info.get("first") or {}).get("method") ==
         "exec_stream.stdout", line)
    if not vm:
        c.kill()
        return
    c.send_signal(signal.SIGKILL)
    c.wait()
    T.ok("killed client: the server notices and exits", wait_gone(pid, 30))
    T.eq("killed client: the VM is recorded stopped", ["stopped", 0], [record(vm).get("status"), record(vm).get("pid")])
    T.eq("killed client: no QEMU left", [], wait_no_qemu(10))
    T.ok("killed client: the scratch disk is gone", not os.path.exists(os.path.join(VMS, vm, "scratch.ext4")))


# ------------------------------------------------------------------ the server killed
def killed_server():
    w = wire()
    vm = create(w)
    if not vm:
        T.ok("killed server: create", False)
        return w.kill()
    rid = w.request("exec_stream", {"command": "echo started; sleep 600"})
    w.collect(rid, timeout=0.1)
    pid = w.p.pid
    os.kill(pid, signal.SIGKILL)
    w.wait(10)
    T.eq("killed server: QEMU dies with it (parent-death signal)", [], wait_no_qemu(10))
    rec = record(vm)
    T.eq("killed server: the record still says running, with the dead pid", ["running", pid],
         [rec.get("status"), rec.get("pid")])
    T.ok("killed server: its scratch disk is left behind", os.path.exists(os.path.join(VMS, vm, "scratch.ext4")))
    g = subprocess.run(ML + ["gc"], capture_output=True, text=True, timeout=60)
    T.eq("gc: exit 0", 0, g.returncode)
    T.ok("gc cleans what the killed server left", re.search(rf"^{vm}: cleaned .*scratch_remove", g.stdout, re.M) is not None,
         g.stdout + g.stderr)
    T.ok("gc: the scratch disk is gone", not os.path.exists(os.path.join(VMS, vm, "scratch.ext4")))


def main():
    slow_reader()
    killed_client()
    killed_server()
    T.eq("no QEMU outlives the tests", [], wait_no_qemu(5))
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
