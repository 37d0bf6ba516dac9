#!/usr/bin/env python3
"""tests/lib/regtools.py - small loopback helpers for the pull tests (all bind 127.0.0.1 only).

  regtools.py proxy LPORT TPORT RATE COUNTFILE
      A TCP forwarder to 127.0.0.1:TPORT that sends the server's bytes to the client at RATE
      bytes/s, so a pull is slow enough to be interrupted; COUNTFILE holds the bytes sent so far.
  regtools.py huge PORT SIZE
      A registry that serves /v2/ and, for every manifest, a valid OCI manifest of SIZE bytes
      (a huge annotation) with its correct digest: the client must cap it, not read it all.
  regtools.py tokenproxy LPORT UPSTREAM_PORT LOGFILE (USER:PASS | --anonymous)
      A registry with Bearer token auth in front of a plain-HTTP registry on UPSTREAM_PORT: every
      /v2/ request needs a token for its repository's pull scope (else 401 and a challenge whose
      realm is this server's /token); /token wants Basic USER:PASS (or nobody with --anonymous).
      Each request is one JSON line in LOGFILE (method, path, token: none|valid|wrong, scope...).
All print "ready" on stdout once listening."""
import base64, hashlib, http.client, json, os, re, secrets, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def proxy(lport, tport, rate, countfile):
    sent = [0]
    lock = threading.Lock()

    def pump(src, dst, limit):
        try:
            while True:
                data = src.recv(65536 if not limit else max(1024, rate // 20))
                if not data:
                    break
                dst.sendall(data)
                if limit:
                    # under the lock: concurrent connections once raced on the temp file,
                    # and the loser's error cut its transfer short
                    with lock:
                        sent[0] += len(data)
                        with open(countfile + ".tmp", "w") as f:
                            f.write(str(sent[0]))
                        os.replace(countfile + ".tmp", countfile)
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = ls.accept()
        u = socket.create_connection(("127.0.0.1", tport))
        threading.Thread(target=pump, args=(c, u, False), daemon=True).start()
        threading.Thread(target=pump, args=(u, c, True), daemon=True).start()


def huge(port, size):
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    base = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)},
            "layers": [], "annotations": {"pad": ""}}
    pad = size - len(json.dumps(base).encode())
    base["annotations"]["pad"] = "x" * max(pad, 0)
    body = json.dumps(base).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, head_only):
            if self.path.rstrip("/") == "/v2":
                payload, ctype = b"{}", "application/json"
            elif "/manifests/" in self.path:
                payload, ctype = body, "application/vnd.oci.image.manifest.v1+json"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Docker-Content-Digest", digest)
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            self.end_headers()
            if not head_only:
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass

        def do_GET(self):
            self.reply(False)

        def do_HEAD(self):
            self.reply(True)

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    print("ready", flush=True)
    srv.serve_forever()


def tokenproxy(lport, uport, logfile, creds):
    tokens = {}  # token -> the one scope it was issued for
    lock = threading.Lock()
    hop = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
           "proxy-authenticate", "proxy-authorization"}

    def log(**kv):
        with lock, open(logfile, "a") as f:
            f.write(json.dumps(kv) + "\n")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_json(self, code, obj, extra=()):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def token(self, q):
            got = self.headers.get("Authorization", "")
            basic = "none"
            if got.startswith("Basic "):
                try:
                    basic = "ok" if base64.b64decode(got[6:]).decode() == creds else "bad"
                except ValueError:
                    basic = "bad"
            scope, service = q.get("scope", [""])[0], q.get("service", [""])[0]
            log(method=self.command, path="/token", service=service, scope=scope, basic=basic)
            if creds and basic != "ok":
                return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                      [("WWW-Authenticate", 'Basic realm="test-token"')])
            tok = secrets.token_urlsafe(24)
            with lock:
                tokens[tok] = scope
            self.send_json(200, {"token": tok, "access_token": tok, "expires_in": 300})

        def registry(self):
            m = re.match(r"^/v2/(.+)/(manifests|blobs|tags)/", self.path)
            need = "repository:%s:pull" % m.group(1) if m else None
            got = self.headers.get("Authorization", "")
            tok = got[7:] if got.startswith("Bearer ") else None
            with lock:
                have = tokens.get(tok) if tok else None
            state = "none" if tok is None else "valid" if tok in tokens and (need is None or have == need) else "wrong"
            log(method=self.command, path=self.path, token=state, scope=need or "")
            if state != "valid":
                chal = 'Bearer realm="http://127.0.0.1:%d/token",service="test-registry"' % lport
                if need:
                    chal += ',scope="%s"' % need
                return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                      [("WWW-Authenticate", chal)])
            self.forward()

        def forward(self):
            u = http.client.HTTPConnection("127.0.0.1", uport, timeout=60)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in hop | {"authorization", "host"}}
            hdrs["Host"] = "127.0.0.1:%d" % uport
            u.request(self.command, self.path, headers=hdrs)
            r = u.getresponse()
            self.send_response(r.status)
            length = r.getheader("Content-Length")
            for k, v in r.getheaders():
                if k.lower() in hop:
                    continue
                if k.lower() == "location":
                    v = v.replace("127.0.0.1:%d" % uport, "127.0.0.1:%d" % lport)
                self.send_header(k, v)
            if length is None and self.command != "HEAD":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            try:
                while self.command != "HEAD":
                    data = r.read(65536)
                    if not data:
                        break
                    self.wfile.write(data)
            except OSError:
                self.close_connection = True
            u.close()

        def do_GET(self):
            from urllib.parse import urlsplit, parse_qs
            sp = urlsplit(self.path)
            if sp.path == "/token":
                return self.token(parse_qs(sp.query))
            if not sp.path.startswith("/v2"):
                return self.send_json(404, {})
            self.registry()

        do_HEAD = do_GET

    srv = ThreadingHTTPServer(("127.0.0.1", lport), H)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "huge":
        huge(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "tokenproxy":
        tokenproxy(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                   None if sys.argv[5] == "--anonymous" else sys.argv[5])
    else:
        sys.exit("usage: regtools.py proxy|huge|tokenproxy ...")
