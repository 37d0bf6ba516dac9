#!/usr/bin/env python3
"""tests/lib/regtools.py - small loopback helpers for the pull tests (all bind 127.0.0.1 only).

  regtools.py proxy LPORT TPORT RATE COUNTFILE
      A TCP forwarder to 127.0.0.1:TPORT that sends the server's bytes to the client at RATE
      bytes/s, so a pull is slow enough to be interrupted; COUNTFILE holds the bytes sent so far.
  regtools.py huge PORT SIZE
      A registry that serves /v2/ and, for every manifest, a valid OCI manifest of SIZE bytes
      (a huge annotation) with its correct digest: the client must cap it, not read it all.
Both print "ready" on stdout once listening."""
import hashlib, json, os, socket, sys, threading, time
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


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "huge":
        huge(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: regtools.py proxy|huge ...")
