"""tests/lib/rpcwire.py - a small stdlib-only JSON-RPC wire client for `matchlock rpc`, for
golden-transcript tests: send exact lines, read exact lines, nothing hidden.

    w = Wire(argv)                  # argv starts the server (as the test user)
    w.send({...}) / w.send_raw(b"...\n")
    msg = w.recv(timeout)           # one parsed line (dict), or None on timeout/EOF
    res, notes = w.call("exec", {"command": "true"})   # response + notifications for its id
    w.close_stdin(); w.wait(timeout)
"""
import json
import os
import select
import subprocess
import time


class Wire:
    def __init__(self, argv, stderr_path=None, env=None):
        self.stderr = open(stderr_path or os.devnull, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.stderr, env=env)
        self.buf = b""
        self.next_id = 1
        self.pending = []  # lines read but not yet returned
        os.set_blocking(self.p.stdout.fileno(), False)

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def recv_line(self, timeout=30.0):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.p.stdout.fileno(), 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def recv(self, timeout=30.0):
        if self.pending:
            return self.pending.pop(0)
        line = self.recv_line(timeout)
        return None if line is None else json.loads(line)

    def request(self, method, params=None, rid=None):
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "method": method, "id": rid}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return rid

    def collect(self, rid, timeout=60.0):
        """Reads until the response for rid; returns (response, [notifications for rid]).
        Other lines are kept for later recv()."""
        notes, others = [], []
        end = time.monotonic() + timeout
        resp = None
        while resp is None:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is None:
                break
            if m.get("id") == rid:
                resp = m
            elif "method" in m and isinstance(m.get("params"), dict) and m["params"].get("id") == rid:
                notes.append(m)
            else:
                others.append(m)
        self.pending = others + self.pending
        return resp, notes

    def call(self, method, params=None, timeout=60.0):
        return self.collect(self.request(method, params), timeout)

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait(self, timeout=30.0):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class Checks:
    """TAP-ish lines in the harness's format; exit status says whether all held."""

    def __init__(self, name):
        self.name, self.fails, self.passes = name, 0, 0

    def ok(self, desc, cond, seen=None):
        if cond:
            self.passes += 1
            print(f"ok - {self.name}: {desc}", flush=True)
        else:
            self.fails += 1
            extra = f" (saw {str(seen)[:600]!r})" if seen is not None else ""
            print(f"not ok - {self.name}: {desc}{extra}", flush=True)
        return cond

    def eq(self, desc, want, got):
        return self.ok(f"{desc}" if want == got else f"{desc} (wanted {str(want)[:300]!r})", want == got, got)

    def done(self):
        print(f"# {self.name}: {self.passes} passed, {self.fails} failed", flush=True)
        return 0 if self.fails == 0 else 1
