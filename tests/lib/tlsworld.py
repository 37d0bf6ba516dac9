#!/usr/bin/env python3
"""tests/lib/tlsworld.py - web servers of the network test world for the interception tests
(started by world_tls_up in tests/lib/networld.sh, inside the world's internet namespace).

  tlsworld.py serve DIR TTL SPEC...     SPEC = http|https:ADDR:PORT:NAME[:CERTNAME]
      One thread per server (and per connection); every server ends after TTL seconds.
      https uses DIR/tls/CERTNAME.crt/.key (default NAME), signed by the world CA
      (DIR/tls/ca.crt). Every request appends "METHOD TARGET host=H auth=A" to
      DIR/web-NAME.log (A: the Authorization header, Basic credentials decoded), so a test
      can prove what arrived, and that nothing did. Prints "ready" once all listen.
  tlsworld.py ws HOST PORT PATH TEXT    (guest side) one WebSocket text round trip (TLS if
      PORT is 443, trusting the default CA store): prints "ws-echo TEXT" or "ws-bad ..."
  tlsworld.py sse URL                   (guest side, urllib) prints each "data:" line with the
      seconds since the request started: "t=0.12 data: ..."
  tlsworld.py get URL                   (guest side, urllib) prints the body

Endpoints (HTTP/1.1, keep-alive):
  /                      "hello from NAME"
  /headers               the request line and headers, as received
  /anything/...          JSON {"method","path","args","headers","url"} (httpbin-like)
  /response-headers?K=V  the query's pairs as response headers, JSON body of them
  /sse?count=N&gap=S     text/event-stream, chunked: data: {"id": i}, S seconds apart
  /ws                    WebSocket handshake, then echoes text frames
  /big?mb=N              N MiB of zeros
  /git/...               git smart HTTP (git http-backend over DIR/git), Basic auth required:
                         user anything, password DIR/git/.token
"""
import base64, hashlib, json, os, socket, ssl, subprocess, sys, threading, time, urllib.parse, urllib.request


def log_line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def read_until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("too long")
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_n(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_request(c):
    head = c.read_until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    hdrs = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            hdrs.append((k.strip(), v.strip()))
    h = {k.lower(): v for k, v in hdrs}
    body = b""
    if "chunked" in h.get("transfer-encoding", "").lower():
        while True:
            size = int(c.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                c.read_until(b"\r\n")
                break
            body += c.read_n(size)
            c.read_n(2)
    elif "content-length" in h:
        body = c.read_n(int(h["content-length"]))
    return method, target, lines[0], hdrs, h, body


def send(c, status, body, ctype="text/plain", extra=()):
    if isinstance(body, str):
        body = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    for k, v in extra:
        head += f"{k}: {v}\r\n"
    c.s.sendall(head.encode() + b"\r\n" + body)


def auth_text(h):
    a = h.get("authorization", "")
    if a.lower().startswith("basic "):
        try:
            return "basic:" + base64.b64decode(a[6:].strip()).decode("latin-1")
        except Exception:
            return "basic:?"
    return a


def ws_loop(c, key):
    acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    c.s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Accept: {acc}\r\n\r\n").encode())
    while True:
        b0, b1 = c.read_n(2)
        n = b1 & 0x7f
        if n == 126:
            n = int.from_bytes(c.read_n(2), "big")
        mask = c.read_n(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(x ^ mask[i % 4] for i, x in enumerate(c.read_n(n)))
        if b0 & 0x0f == 8:
            return
        c.s.sendall(bytes([0x81, len(data)]) + data)


def git_backend(c, d, method, target, h, body):
    token = open(f"{d}/git/.token").read().strip()
    a = h.get("authorization", "")
    ok = False
    if a.lower().startswith("basic "):
        try:
            ok = base64.b64decode(a[6:].strip()).decode().partition(":")[2] == token
        except Exception:
            ok = False
    if not ok:
        send(c, "401 Unauthorized", "auth required\n", extra=[("WWW-Authenticate", 'Basic realm="git"')])
        return
    path, _, query = target.partition("?")
    env = dict(os.environ, GIT_PROJECT_ROOT=f"{d}/git", GIT_HTTP_EXPORT_ALL="1", REQUEST_METHOD=method,
               PATH_INFO=path[len("/git"):], QUERY_STRING=query, CONTENT_TYPE=h.get("content-type", ""),
               CONTENT_LENGTH=str(len(body)), REMOTE_USER="git")
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
    head, _, payload = out.partition(b"\r\n\r\n")
    status, extra = "200 OK", []
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        if k.lower() == "status":
            status = v.strip()
        elif k:
            extra.append((k, v.strip()))
    ctype = dict((k.lower(), v) for k, v in extra).pop("content-type", "application/octet-stream")
    send(c, status, payload, ctype, [(k, v) for k, v in extra if k.lower() != "content-type"])


def handle(c, d, name, scheme):
    logp = f"{d}/web-{name}.log"
    while True:
        method, target, line, hdrs, h, body = read_request(c)
        log_line(logp, f"{method} {target} host={h.get('host', '')} auth={auth_text(h)}")
        path, _, query = target.partition("?")
        args = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if path == "/headers":
            send(c, "200 OK", line + "\n" + "".join(f"{k}: {v}\n" for k, v in hdrs))
        elif path.startswith("/anything"):
            url = f"{scheme}://{h.get('host', '')}{target}"
            send(c, "200 OK", json.dumps({"method": method, "path": path, "args": args,
                                          "headers": dict(hdrs), "url": url}, indent=1), "application/json")
        elif path == "/response-headers":
            send(c, "200 OK", json.dumps(args), "application/json", list(args.items()))
        elif path == "/sse":
            n, gap = int(args.get("count", "3")), float(args.get("gap", "0.5"))
            c.s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(n):
                ev = f'data: {{"id":{i},"msg":"event {i}"}}\n\n'.encode()
                c.s.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
                if i + 1 < n:
                    time.sleep(gap)
            c.s.sendall(b"0\r\n\r\n")
        elif path == "/ws" and h.get("upgrade", "").lower() == "websocket":
            ws_loop(c, h.get("sec-websocket-key", ""))
            return
        elif path == "/big":
            n = int(args.get("mb", "1")) << 20
            c.s.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
            z = bytes(1 << 20)
            for _ in range(n >> 20):
                c.s.sendall(z)
        elif path.startswith("/git/"):
            git_backend(c, d, method, target, h, body)
        elif path == "/":
            send(c, "200 OK", f"hello from {name}\n")
        else:
            send(c, "404 Not Found", "no such page\n")
        if h.get("connection", "").lower() == "close":
            return


def serve(spec, d, ready):
    kind, addr, port, name = spec.split(":")[:4]
    certname = spec.split(":")[4] if spec.count(":") >= 4 else name
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(256)
    ctx = None
    if kind == "https":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f"{d}/tls/{certname}.crt", f"{d}/tls/{certname}.key")
    open(f"{d}/web-{name}.log", "a").close()
    ready.release()

    def conn(s):
        s.settimeout(60)
        try:
            if ctx:
                s = ctx.wrap_socket(s, server_side=True)
            handle(Conn(s), d, name, kind)
        except Exception:
            pass
        finally:
            try:
                s.close()
            except Exception:
                pass

    while True:
        s, _ = ls.accept()
        threading.Thread(target=conn, args=(s,), daemon=True).start()


def ws_client(host, port, path, text):
    s = socket.create_connection((host, int(port)), timeout=10)
    if int(port) == 443:
        s = ssl.create_default_context().wrap_socket(s, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    c = Conn(s)
    head = c.read_until(b"\r\n\r\n").decode("latin-1")
    if " 101 " not in head.split("\r\n")[0]:
        print("ws-bad " + head.split("\r\n")[0])
        return
    data, mask = text.encode(), os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(x ^ mask[i % 4] for i, x in enumerate(data)))
    b0, b1 = c.read_n(2)
    print("ws-echo " + c.read_n(b1 & 0x7f).decode())


def sse_client(url):
    t0 = time.time()
    with urllib.request.urlopen(url, timeout=20) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("data:"):
                print(f"t={time.time() - t0:.2f} {line}", flush=True)


def main():
    if sys.argv[1] == "serve":
        d, ttl = sys.argv[2], float(sys.argv[3])
        ready = threading.Semaphore(0)
        for spec in sys.argv[4:]:
            threading.Thread(target=serve, args=(spec, d, ready), daemon=True).start()
        for _ in sys.argv[4:]:
            ready.acquire()
        print("ready", flush=True)
        time.sleep(ttl)
    elif sys.argv[1] == "ws":
        ws_client(*sys.argv[2:6])
    elif sys.argv[1] == "sse":
        sse_client(sys.argv[2])
    elif sys.argv[1] == "get":
        print(urllib.request.urlopen(sys.argv[2], timeout=20).read().decode(), end="")


if __name__ == "__main__":
    main()
