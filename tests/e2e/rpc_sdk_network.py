"""rpc_sdk_network: network interception through `matchlock rpc`, driven by the real, unmodified
Python SDK (the `matchlock` package on PYTHONPATH), inside tests/lib/networld.sh's fake
internet with its TLS servers. Started by rpc_sdk_network.sh, which checks the servers' logs.

One VM (default image: busybox wget) with an allow-list, a secret for echo.test and rules of
every kind: static before (set/delete headers, block by path), static after (body
replacement), SDK callbacks before (headers replaced, block) and after (set_body), and a slow
callback that must fail open. Then a VM created on the wire, whose `event` notifications must
describe the exchanges (the Python SDK ignores network events)."""
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcwire import Checks, Wire  # noqa: E402

from matchlock import (Client, Config, NetworkBodyTransform, NetworkHookRequestMutation,  # noqa: E402
                       NetworkHookResponseMutation, NetworkHookResult, NetworkHookRule,
                       NetworkInterceptionConfig, Sandbox)

HOME = os.environ["HOME"]
BIN = os.environ["ML_SDK_BIN"]
IMG = os.environ.get("ML_IMAGE", "matchlock/default:latest")
VALUE = os.environ["ML_SECRET"]
VMS = os.path.join(HOME, ".matchlock", "vms")
T = Checks("rpc_sdk_network")
seen = []           # what the callbacks were given
seen_lock = threading.Lock()


def cb_tag(req):
    with seen_lock:
        seen.append(req)
    headers = dict(req.request_headers or {})
    headers["X-Hooked"] = ["by-sdk"]
    return NetworkHookResult(action="allow", request=NetworkHookRequestMutation(headers=headers))


def cb_block(req):
    return NetworkHookResult(action="block")


def cb_body(req):
    return NetworkHookResult(response=NetworkHookResponseMutation(set_body="body from the hook\n"))


def cb_slow(req):
    time.sleep(2)
    return NetworkHookResult(action="block")


def wget(c, url, *headers, secs=20):
    """busybox wget in the guest: (rc, seconds, output)."""
    hdr = " ".join(f'--header "{h}"' for h in headers)   # double quotes: $TOKEN expands
    r = c.exec(f"s=$(cut -d' ' -f1 /proc/uptime); timeout {secs} wget -q -O - {hdr} {url} 2>&1; rc=$?; "
               f"e=$(cut -d' ' -f1 /proc/uptime); echo; echo \"@rc=$rc t=$(awk -v a=$s -v b=$e 'BEGIN {{print b - a}}')\"")
    m = re.search(r"@rc=(\d+) t=([0-9.]+)", r.stdout)
    return (int(m.group(1)) if m else -1, float(m.group(2)) if m else -1.0, r.stdout)


def sdk_vm():
    rules = [
        NetworkHookRule(name="tag-static", phase="before", hosts=["echo.test"], path="/headers",
                        set_headers={"X-Static": "yes"}, delete_headers=["X-Drop"]),
        NetworkHookRule(name="no-admin", phase="before", path="/admin/*", action="block"),
        NetworkHookRule(name="swap", phase="after", hosts=["web.test"], body_replacements=[NetworkBodyTransform("hello", "howdy")]),
        NetworkHookRule(name="cb-tag", phase="before", hosts=["echo.test"], path="/headers", hook=cb_tag),
        NetworkHookRule(name="cb-block", phase="before", path="/blocked", hook=cb_block),
        NetworkHookRule(name="cb-body", phase="after", hosts=["echo.test"], path="/anything/*", hook=cb_body),
        NetworkHookRule(name="cb-slow", phase="before", hosts=["web.test"], path="/", timeout_ms=300, hook=cb_slow),
    ]
    sb = (Sandbox(IMG).allow_host("echo.test", "web.test").add_secret("TOKEN", VALUE, "echo.test")
          .with_network_interception(NetworkInterceptionConfig(rules=rules)))
    c = Client(Config(binary_path=BIN))
    c.start()
    vm = c.launch(sb)
    T.ok("launch with secrets and hook rules", bool(vm), vm)
    env = c.exec("echo \"$TOKEN|$SSL_CERT_FILE\"").stdout.strip()
    T.ok("the guest holds a placeholder, not the value", re.fullmatch(r"SANDBOX_SECRET_[0-9a-f]{32}\|/etc/ssl/certs/matchlock-ca.crt", env), env)
    ph = env.split("|")[0]

    rc, _, o = wget(c, "http://echo.test/headers", "Authorization: Bearer $TOKEN", "X-Drop: gone")
    T.ok("echo.test answers through the rules", rc == 0, o)
    T.ok("the secret was substituted for its host", f"Authorization: Bearer {VALUE}" in o, o)
    T.ok("static set_headers", "X-Static: yes" in o, o)
    T.ok("static delete_headers", "X-Drop" not in o, o)
    T.ok("a callback replaced the headers (X-Hooked)", "X-Hooked: by-sdk" in o, o)
    with seen_lock:
        got = list(seen)
    T.ok("the callback was called once, with the request", len(got) == 1 and got[0].host == "echo.test"
         and got[0].method == "GET" and got[0].path == "/headers" and got[0].phase == "before", got)
    hdrs = json.dumps(got[0].request_headers if got else {})
    T.ok("the callback saw the placeholder, never the value", ph in hdrs and VALUE not in hdrs, hdrs)

    rc, _, o = wget(c, "https://web.test/")
    T.ok("an after rule rewrote the body over TLS (and the slow callback failed open)", rc == 0 and "howdy from web" in o, o)
    rc, t, o = wget(c, "http://web.test/")
    T.ok("the slow callback: the request went on after its 300 ms timeout", rc == 0 and "howdy from web" in o and 0.25 < t < 1.9,
         (t, o))
    rc, _, o = wget(c, "http://echo.test/admin/x")
    T.ok("a static block rule: 403", rc != 0 and "403" in o, o)
    rc, _, o = wget(c, "http://echo.test/blocked")
    T.ok("a callback that blocks: 403", rc != 0 and "403" in o, o)
    rc, _, o = wget(c, "http://echo.test/anything/x")
    T.ok("an after callback's set_body", rc == 0 and "body from the hook" in o, o)
    rc, _, o = wget(c, "http://web.test/", "X-Key: $TOKEN")
    T.ok("the placeholder sent to another host: 403", rc != 0 and "403" in o, o)
    rc, _, o = wget(c, "http://other.test/")
    T.ok("a host not in the list is refused", rc != 0, o)

    eg = ""
    try:
        with open(os.path.join(VMS, vm, "egress.jsonl")) as f:
            eg = f.read()
    except OSError as e:
        eg = str(e)
    T.ok("egress.jsonl names the secret", '"secrets":["TOKEN"]' in eg, eg)
    T.ok("egress.jsonl names the blocking rule", '"rule":"no-admin"' in eg, eg)
    T.ok("egress.jsonl records the placeholder refusal", "secret placeholder sent to unauthorized host" in eg, eg)
    rec = ""
    try:
        with open(os.path.join(VMS, vm, "vm.json")) as f:
            rec = f.read()
    except OSError as e:
        rec = str(e)
    T.ok("no value in egress.jsonl or the VM record", VALUE not in eg and VALUE not in rec and "TOKEN" in rec, rec)
    c.close()
    c.remove()


def wire_events():
    w = Wire([BIN, "rpc"], stderr_path=os.path.join(HOME, "rpc.stderr"))
    res, _ = w.call("create", {"image": IMG, "network": {"allowed_hosts": ["echo.test"], "block_private_ips": True}},
                    timeout=300)
    T.ok("wire: create with an allow-list", res and "result" in res, res)
    res, _ = w.call("exec", {"command": "wget -q -O - http://echo.test/headers; wget -q -O - http://web.test/ ; true"})
    T.ok("wire: two requests from the guest", res and "result" in res, res)
    events, end = [], time.monotonic() + 10
    while time.monotonic() < end and len([e for e in events if e.get("network", {}).get("method") == "GET"]) < 2:
        m = w.recv(1.0)
        if m and m.get("method") == "event":
            events.append(m["params"])
    nets = [e["network"] for e in events if e.get("type") == "network"]
    ok = [n for n in nets if n.get("method") == "GET" and n.get("host") == "echo.test"]
    T.ok("wire: an event for the proxied exchange (method, url, status, bytes)",
         ok and ok[0]["url"] == "http://echo.test/headers" and ok[0]["status_code"] == 200
         and ok[0]["response_bytes"] > 0 and ok[0]["blocked"] is False, nets)
    # web.test is not in the list: its DNS question is refused (a DNS event), or, if the guest
    # had the address, the proxy's 403 is one
    T.ok("wire: the refusal is an event with its reason", any(n.get("blocked") and n.get("block_reason") for n in nets), nets)
    w.call("close", {})
    w.close_stdin()
    w.wait(60)
    w.kill()


if __name__ == "__main__":
    try:
        sdk_vm()
        wire_events()
    except Exception as e:  # noqa: BLE001 - report, then fail
        T.ok("no exception", False, f"{type(e).__name__}: {e}")
    sys.exit(T.done())
