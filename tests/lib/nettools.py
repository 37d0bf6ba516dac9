#!/usr/bin/env python3
"""tests/lib/nettools.py - the servers of the network test world and the guest-side probes.

Host side (run inside the world's network namespace by tests/lib/networld.sh):
  nettools.py serve DIR TTL SPEC...
      One process, one thread per server, every server ends after TTL seconds at the latest.
      SPEC is KIND:ADDR:PORT:NAME with KIND one of
        http    GET / -> "hello from NAME"; GET /FILE -> DIR/www/FILE; PUT/POST (Content-Length
                or chunked) -> "sha256 HEX LEN" of the body. Requests logged to DIR/http-NAME.log.
        echo    echoes until the client's EOF, then half-closes (SHUT_WR) and closes.
        record  appends "conn PEER" to DIR/rec-NAME.log for every accepted connection, answers
                "HTTP/1.0 200 OK ... recorder NAME" and closes (so an allowed client gets a page
                and a blocked one leaves no line).
        sink    accepts every connection, logs "conn PEER" to DIR/rec-NAME.log, and never reads
                nor closes it (a server that never reads: the client's data piles up).
        udp     appends "dgram PEER LEN" to DIR/rec-NAME.log for every datagram.
      Prints "ready" once every socket listens.
  nettools.py client-echo ADDR PORT PAYLOAD_BYTES
      One echo round trip with a half-close; prints "echo-ok N" or "echo-bad ...". Never waits
      more than 10 s.

Guest side (the Debian test image; the file is shipped base64-encoded in the command line):
  nettools.py dns SERVER NAME TYPE       one raw UDP query: "rcode=R an=N addrs=A,B"
  nettools.py dnstcp SERVER NAME TYPE    the same over TCP (length-prefixed, RFC 1035 4.2.2)
  nettools.py halfclose ADDR PORT BYTES  send, SHUT_WR, read everything back; "halfclose-ok N"
  nettools.py many ADDR PORT COUNT BYTES COUNT connections open at once, each echoes its own
                                         payload; "many-ok COUNT" or "many-bad ..."
  nettools.py connect ADDR PORT          one TCP connect (5 s max): "connect ADDR:PORT RESULT SECS"
  nettools.py frames COUNTS...           raw AF_PACKET frames out of eth0 (see frames())
  nettools.py udpsend ADDR PORT COUNT    COUNT datagrams through an ordinary UDP socket
  nettools.py gai NAME                   getaddrinfo(NAME) (any family): the sorted addresses
  nettools.py dnsbad SERVER              malformed DNS queries (valid UDP): "dnsbad-sent N"
  nettools.py dnsflood SERVER COUNT      COUNT queries for distinct names, not waiting for
                                         answers; then counts answers for 3 s: "dnsflood N M"
  nettools.py stuff ADDR PORT N WEB      N connections to a server that never reads, each filled
                                         until its writes block; then DNS and a new HTTP request
                                         to WEB; prints START/STUFFED/HOLD markers for the host's
                                         RSS readings (tests/e2e/net_pressure.sh)
"""
import hashlib, os, random, select, socket, struct, sys, threading, time

# ---------------------------------------------------------------- host side: the servers


def log_line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


def listen_tcp(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    # deep: 1000 guest flows arrive within 2-3 s (net_pressure); on a loaded CI host a full
    # accept queue drops SYNs, and the proxy's 10 s connect timeout would end some of them
    s.listen(4096)
    return s


def serve_forever(ls, handler):
    while True:
        try:
            c, peer = ls.accept()
        except OSError:  # EMFILE and the like: this server must not die of it
            time.sleep(0.05)
            continue
        threading.Thread(target=handler, args=(c, peer), daemon=True).start()


def echo_conn(c, peer):
    c.settimeout(120)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        c.close()


def record_server(d, name):
    path = f"{d}/rec-{name}.log"
    open(path, "a").close()

    def conn(c, peer):
        log_line(path, f"conn {peer[0]}:{peer[1]}")
        c.settimeout(2)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                d2 = c.recv(4096)
                if not d2:
                    break
                buf += d2
        except OSError:
            pass
        try:
            body = f"recorder {name}\n".encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        c.close()
    return conn


def read_line(f, limit=8192):
    line = f.readline(limit)
    if not line.endswith(b"\n"):
        raise ValueError("line too long or EOF")
    return line.rstrip(b"\r\n")


def http_server(d, name):
    """A small HTTP/1.1 server (one request per connection) written out so the body hashing of
    uploads streams and chunked uploads work (http.server does neither)."""
    logp = f"{d}/http-{name}.log"
    open(logp, "a").close()
    www = f"{d}/www"

    def reply(c, code, body, ctype="text/plain"):
        head = f"HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        c.sendall(head.encode() + body)

    def conn(c, peer):
        c.settimeout(120)
        f = c.makefile("rb")
        try:
            req = read_line(f).decode("latin-1").split()
            hdrs = {}
            while True:
                line = read_line(f)
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                hdrs[k.strip().lower()] = v.strip()
            method, path = req[0], req[1]
            log_line(logp, f"{method} {path} {peer[0]}")
            if method in ("PUT", "POST"):
                h, n = hashlib.sha256(), 0
                if hdrs.get("expect", "").lower() == "100-continue":
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if "chunked" in hdrs.get("transfer-encoding", "").lower():
                    while True:
                        size = int(read_line(f).split(b";")[0], 16)
                        if size == 0:
                            while read_line(f):
                                pass
                            break
                        left = size
                        while left:
                            b = f.read(min(left, 1 << 16))
                            if not b:
                                raise ValueError("short chunk")
                            h.update(b)
                            n += len(b)
                            left -= len(b)
                        read_line(f)
                else:
                    left = int(hdrs.get("content-length", "0"))
                    while left:
                        b = f.read(min(left, 1 << 16))
                        if not b:
                            raise ValueError("short body")
                        h.update(b)
                        n += len(b)
                        left -= len(b)
                reply(c, "200 OK", f"sha256 {h.hexdigest()} {n}\n".encode())
            elif method == "GET" and path == "/":
                reply(c, "200 OK", f"hello from {name}\n".encode(), "text/html")
            elif method == "GET" and "/" not in path[1:] and os.path.isfile(f"{www}/{path[1:]}"):
                size = os.path.getsize(f"{www}/{path[1:]}")
                c.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
                with open(f"{www}/{path[1:]}", "rb") as fh:
                    c.sendfile(fh)
            else:
                reply(c, "404 Not Found", b"not found\n")
        except (OSError, ValueError, IndexError):
            pass
        finally:
            try:
                f.close()
                c.close()
            except OSError:
                pass
    return conn


def sink_server(d, name):
    path = f"{d}/rec-{name}.log"
    open(path, "a").close()
    held = []

    def conn(c, peer):
        log_line(path, f"conn {peer[0]}:{peer[1]}")
        held.append(c)  # kept open and never read until the process ends
    return conn


def udp_server(d, addr, port, name):
    path = f"{d}/rec-{name}.log"
    open(path, "a").close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))

    def loop():
        while True:
            data, peer = s.recvfrom(65536)
            log_line(path, f"dgram {peer[0]}:{peer[1]} {len(data)}")
    return loop


def serve(d, ttl, specs):
    import resource
    # the sink holds every connection it gets (1000 in net_pressure) besides the other servers'
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    threads = []
    for spec in specs:
        kind, addr, port, name = spec.split(":")
        port = int(port)
        if kind == "udp":
            threads.append(udp_server(d, addr, port, name))
            continue
        ls = listen_tcp(addr, port)
        handler = {"http": lambda: http_server(d, name), "echo": lambda: echo_conn,
                   "record": lambda: record_server(d, name), "sink": lambda: sink_server(d, name)}[kind]()
        threads.append(lambda ls=ls, handler=handler: serve_forever(ls, handler))
    for t in threads:
        threading.Thread(target=t, daemon=True).start()
    print("ready", flush=True)
    time.sleep(ttl)


def recv_to_eof(s):
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            return got
        got += d


def client_echo(addr, port, nbytes):
    payload = os.urandom(nbytes)
    try:
        s = socket.create_connection((addr, port), timeout=10)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = recv_to_eof(s)
        s.close()
    except OSError as e:
        print(f"echo-bad {type(e).__name__}:{e}")
        return
    print(f"echo-ok {len(got)}" if got == payload else f"echo-bad got {len(got)} of {nbytes} bytes")

# ---------------------------------------------------------------- guest side: probes


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        d = s.recv(n - len(got))
        if not d:
            raise ConnectionError("EOF")
        got += d
    return got


def dns_query(server, name, qtype, tcp=False):
    qt = {"A": 1, "AAAA": 28, "TXT": 16, "MX": 15, "CNAME": 5, "HTTPS": 65, "NULL": 10}[qtype]
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qt, 1)
    try:
        if tcp:
            s = socket.create_connection((server, 53), timeout=5)
            s.sendall(struct.pack(">H", len(q)) + q)
            r = recv_exact(s, struct.unpack(">H", recv_exact(s, 2))[0])
            s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.sendto(q, (server, 53))
            r, _ = s.recvfrom(4096)
    except OSError as e:
        print(f"dns-error {type(e).__name__}")
        return
    rid, flags, qd, an = struct.unpack(">HHHH", r[:8])
    # answers start after our own question (echoed back); names may be compressed pointers
    off = len(q)
    addrs = []
    for _ in range(an):
        if r[off] & 0xC0 == 0xC0:
            off += 2
        else:
            while r[off]:
                off += r[off] + 1
            off += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        if rtype == 1:
            addrs.append(socket.inet_ntoa(r[off:off + 4]))
        elif rtype == 28:
            addrs.append(socket.inet_ntop(socket.AF_INET6, r[off:off + 16]))
        off += rdlen
    print(f"id_ok={int(rid == qid)} rcode={flags & 15} an={an} addrs={','.join(addrs)}")


def halfclose(addr, port, nbytes):
    payload = os.urandom(nbytes)
    s = socket.create_connection((addr, port), timeout=30)
    got = bytearray()
    # send everything first (the echo server sends back as it reads, so read while sending)
    view, sent = memoryview(payload), 0
    s.setblocking(False)
    deadline = time.time() + 60
    while sent < len(payload) and time.time() < deadline:
        r, w, _ = select.select([s], [s], [], 1)
        if w:
            try:
                sent += s.send(view[sent:sent + 65536])
            except BlockingIOError:
                pass
        if r:
            got += s.recv(65536)
    s.shutdown(socket.SHUT_WR)
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], 1)
        if r:
            d = s.recv(65536)
            if not d:
                break
            got += d
    s.close()
    if bytes(got) == payload:
        print(f"halfclose-ok {len(got)}")
    else:
        print(f"halfclose-bad got {len(got)} of {nbytes}")


def many(addr, port, count, nbytes):
    socks, bad = [], []
    for i in range(count):
        try:
            socks.append(socket.create_connection((addr, port), timeout=20))
        except OSError as e:
            bad.append(f"connect{i}:{e}")
    # all are open at once now; each sends its own payload and checks its own echo
    results = [None] * len(socks)

    def one(i, s):
        payload = (b"%05d-" % i) * (nbytes // 6 + 1)
        payload = payload[:nbytes]
        try:
            s.settimeout(60)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            results[i] = recv_to_eof(s) == payload
        except OSError as e:
            results[i] = f"{e}"
        s.close()
    ts = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(socks)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    good = sum(1 for r in results if r is True)
    if good == count and not bad:
        print(f"many-ok {good}")
    else:
        print(f"many-bad {good}/{count} {bad[:3]} {[r for r in results if r is not True][:3]}")


def scale(addr, port, n, web):
    """n echo connections open at once (each echoes its own line), then, with all of them
    still open: DNS lookups and a new HTTP request; prints START/HOLD markers for the host's
    RSS readings (tests/e2e/net_scale.sh)."""
    print("START", flush=True)
    time.sleep(3)
    t = time.time()
    socks = [socket.create_connection((addr, port), timeout=30) for _ in range(n)]
    print("opened %d %.2f" % (len(socks), time.time() - t), flush=True)
    for i, s in enumerate(socks):
        s.sendall(b"flow-%d\n" % i)
    good = 0
    for i, s in enumerate(socks):
        d = b""
        while not d.endswith(b"\n") and len(d) < 64:
            c = s.recv(64)
            if not c:
                break
            d += c
        good += d == b"flow-%d\n" % i
    print("echoed %d" % good, flush=True)
    lat = []
    for _ in range(20):
        t = time.time()
        socket.getaddrinfo(web, 80, socket.AF_INET)
        lat.append(time.time() - t)
    lat.sort()
    print("dns_ms median %.1f max %.1f" % (lat[10] * 1000, lat[-1] * 1000), flush=True)
    t = time.time()
    c = socket.create_connection((web, 80), timeout=10)
    c.sendall(b"GET / HTTP/1.0\r\nHost: " + web.encode() + b"\r\n\r\n")
    r = recv_to_eof(c)
    print("http_ms %.1f %s" % ((time.time() - t) * 1000, b"hello from web" in r), flush=True)
    print("HOLD", flush=True)
    time.sleep(6)
    for s in socks:
        s.close()
    print("closed", flush=True)


def stuff(addr, port, n, web):
    """n connections to a server that never reads, each written to until it blocks for 2 s in
    a row (the whole path is full: guest socket, the supervisor's buffers, the server's); then,
    with all of them stuck, DNS and a new HTTP request still work. START/STUFFED/HOLD markers
    let the host read the supervisor's RSS before and while (tests/e2e/net_pressure.sh)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 64, hard), hard))
    print("START", flush=True)
    time.sleep(3)
    t = time.time()
    socks = []
    for _ in range(n):
        s = socket.create_connection((addr, port), timeout=30)
        s.setblocking(False)
        socks.append(s)
    print("opened %d %.2f" % (len(socks), time.time() - t), flush=True)
    chunk, sent, idle, end = b"x" * 65536, 0, 0, time.time() + 240
    while idle < 2 and time.time() < end:
        moved = 0
        for s in socks:
            try:
                moved += s.send(chunk)
            except BlockingIOError:
                pass
        sent += moved
        idle = idle + 0.25 if not moved else 0
        if not moved:
            time.sleep(0.25)
    print("stuffed %d bytes %.1f s" % (sent, time.time() - t), flush=True)
    t = time.time()
    ok = True
    try:
        socket.getaddrinfo(web, 80, socket.AF_INET)
        c = socket.create_connection((web, 80), timeout=10)
        c.sendall(b"GET / HTTP/1.0\r\nHost: " + web.encode() + b"\r\n\r\n")
        ok = b"hello from web" in recv_to_eof(c)
    except OSError:
        ok = False
    print("http_ms %.1f %s" % ((time.time() - t) * 1000, ok), flush=True)
    print("STUFFED", flush=True)
    time.sleep(8)
    print("HOLD", flush=True)
    for s in socks:
        s.close()
    print("closed", flush=True)


def connect(addr, port):
    t = time.time()
    try:
        s = socket.create_connection((addr, port), timeout=5)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(5)
        d = s.recv(200)
        res = "open:" + d.split(b"\r\n")[-1].decode(errors="replace").strip().replace(" ", "_") if d else "open-eof"
        s.close()
    except ConnectionRefusedError:
        res = "refused"
    except ConnectionResetError:
        res = "reset"
    except socket.timeout:
        res = "timeout"
    except OSError as e:
        res = f"error-{e.errno}"
    print(f"connect {addr}:{port} {res} {time.time() - t:.2f}")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(src, dst, proto, payload, ident=0, frag=0, bad_csum=False, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    c = csum(h) ^ (0x5555 if bad_csum else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def ip4_len_lie(src, dst):
    """A valid-checksum IPv4 header whose total length (1400) is far beyond the frame."""
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1400, 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + b"\0" * 8


def l4_csum(src, dst, proto, seg):
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(seg))
    return csum(ph + seg)


def udp(src, dst, sport, dport, data, bad_csum=False):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = l4_csum(src, dst, 17, seg) or 0xFFFF
    if bad_csum:
        c ^= 0x5555
    return ip4(src, dst, 17, seg[:6] + struct.pack("!H", c) + seg[8:])


def tcp(src, dst, sport, dport, seq, flags=0x02, bad_csum=False):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 64240, 0, 0)
    c = l4_csum(src, dst, 6, seg) ^ (0x5555 if bad_csum else 0)
    return ip4(src, dst, 6, seg[:16] + struct.pack("!H", c) + seg[18:])


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def gateway_mac():
    # make the kernel ARP for the gateway, then read its cache
    for _ in range(20):
        for line in open("/proc/net/arp").read().splitlines()[1:]:
            f = line.split()
            if f[0] == "10.0.2.2" and f[3] != "00:00:00:00:00:00":
                return f[3]
        try:
            socket.create_connection(("198.51.100.10", 80), timeout=1).close()
        except OSError:
            pass
        time.sleep(0.1)
    return "52:55:0a:00:02:02"


def frames(counts):
    """Hostile frames from the guest, each kind COUNT times (kind=COUNT arguments). The guest
    is 10.0.2.15; frames go to the gateway's MAC. Prints "frames-sent TOTAL"."""
    me = "10.0.2.15"
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    src = mac_bytes(open("/sys/class/net/eth0/address").read().strip())
    gw = mac_bytes(gateway_mac())
    eth = lambda et, dst=gw, sm=src: dst + sm + struct.pack("!H", et)
    rnd = random.Random(7)

    def arp_req(spa, tpa, sha=src):
        return eth(0x0806, b"\xff" * 6, sha) + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sha,
                                                          socket.inet_aton(spa), b"\0" * 6, socket.inet_aton(tpa))
    kinds = {
        "udp9999": lambda i: eth(0x0800) + udp(me, "198.51.100.20", 40000 + i % 1000, 9999, b"leak %d" % i),
        "udpdns_other": lambda i: eth(0x0800) + udp(me, "1.1.1.1", 41000 + i % 1000, 53, dns_packet("web.test")),
        "ipv6": lambda i: eth(0x86DD) + struct.pack("!IHBB16s16s", 6 << 28, 8, 17, 64, socket.inet_pton(socket.AF_INET6, "fd00::15"),
                                                      socket.inet_pton(socket.AF_INET6, "2001:db8::20")) + struct.pack("!HHHH", 5555, 9999, 8, 0),
        "gre": lambda i: eth(0x0800) + ip4(me, "198.51.100.20", 47, b"\0\0\x08\0" + b"x" * 40),
        "spoof_tcp": lambda i: eth(0x0800) + tcp("198.51.100.99", "198.51.100.20", 42000 + i, 7, i),
        "spoof_dns": lambda i: eth(0x0800) + udp("10.0.2.16", "8.8.8.8", 43000 + i, 53, dns_packet("spoof%d.test" % i)),
        "bad_ipcsum": lambda i: eth(0x0800) + ip4(me, "198.51.100.20", 6, tcp(me, "198.51.100.20", 44000 + i, 7, i)[20:], bad_csum=True),
        "bad_tcpcsum": lambda i: eth(0x0800) + tcp(me, "198.51.100.20", 45000 + i, 7, i, bad_csum=True),
        "bad_udpcsum": lambda i: eth(0x0800) + udp(me, "8.8.8.8", 46000 + i, 53, dns_packet("web.test"), bad_csum=True),
        "trunc_eth": lambda i: eth(0x0800),  # AF_PACKET refuses less than an Ethernet header
        "trunc_arp": lambda i: arp_req("10.0.2.15", "10.0.2.2")[:24],
        "trunc_ip": lambda i: eth(0x0800) + ip4(me, "198.51.100.20", 6, tcp(me, "198.51.100.20", 47000 + i, 7, i)[20:])[:30],
        "trunc_len": lambda i: eth(0x0800) + ip4_len_lie(me, "198.51.100.20"),
        "frag": lambda i: eth(0x0800) + ip4(me, "198.51.100.20", 17, udp(me, "198.51.100.20", 48000, 9999, b"f" * 32)[20:], ident=i + 1, frag=0x2000),
        "ethertype": lambda i: eth(0x88B5) + b"z" * 46,
        "icmp_out": lambda i: eth(0x0800) + ip4(me, "198.51.100.10", 1, icmp_echo(i)),
        "dhcp": lambda i: eth(0x0800, b"\xff" * 6) + udp("0.0.0.0", "255.255.255.255", 68, 67, b"\x01\x01\x06\x00" + b"\0" * 236 + b"\x63\x82\x53\x63\x35\x01\x01\xff"),
        "syn_private": lambda i: eth(0x0800) + tcp(me, "10.99.0.10", 10000 + i % 50000, 80, rnd.getrandbits(32)),
        "syn_meta": lambda i: eth(0x0800) + tcp(me, "169.254.169.254", 10000 + i % 50000, 80, rnd.getrandbits(32)),
        "syn_loop": lambda i: eth(0x0800) + tcp(me, "127.0.0.1", 10000 + i % 50000, 8080, rnd.getrandbits(32)),
        "syn_slot": lambda i: eth(0x0800) + tcp(me, "10.0.2.%d" % (100 + i % 100), 10000 + i % 50000, 80, rnd.getrandbits(32)),
        "arp_flood": lambda i: arp_req("10.0.2.%d" % (16 + i % 200), "10.0.2.2", bytes([2, 0, 0, 0, i >> 8 & 255, i & 255])),
        "arp_spoof": lambda i: arp_req("10.0.2.2", "10.0.2.15"),
    }
    total = 0
    for arg in counts:
        kind, _, n = arg.partition("=")
        for i in range(int(n or 1)):
            s.send(bytes(kinds[kind](i)))
            total += 1
            if i % 200 == 199:
                time.sleep(0.02)  # let the supervisor breathe: the point is robustness, not a lost race
    print(f"frames-sent {total}", flush=True)


def dns_packet(name):
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def icmp_echo(i):
    m = struct.pack("!BBHHH", 8, 0, 0, 0x4242, i) + b"ping"
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def udpsend(addr, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(b"leak %d" % i, (addr, port))
    print(f"udpsend {count}")


def gai(name):
    try:
        print(sorted({a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)}))
    except socket.gaierror as e:
        print(f"gai-error {e}")
        sys.exit(1)


def dnsbad(server):
    """Queries a strict resolver front must refuse: each a well-formed UDP datagram."""
    good = dns_packet("web.test")
    hdr = lambda flags, qd, an=0, ns=0, ar=0: struct.pack(">HHHHHH", 0x4242, flags, qd, an, ns, ar)
    q = good[12:]
    bad = [
        b"",                                         # empty
        good[:7],                                    # short header
        hdr(0x8100, 1) + q,                          # a response (QR=1)
        hdr(0x2900, 1) + q,                          # opcode UPDATE
        hdr(0x0100, 2) + q + q,                      # two questions
        hdr(0x0100, 0),                              # no question
        hdr(0x0100, 1, an=1) + q,                    # an answer in a query
        hdr(0x0100, 1) + b"\xc0\x0c" + q[-4:],        # compression pointer to itself
        hdr(0x0100, 1) + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\x3f" + b"a" * 63 + b"\0" + q[-4:],  # name > 255
        hdr(0x0100, 1) + b"\x40" + b"a" * 64 + b"\0" + q[-4:],   # label length 64
        hdr(0x0100, 1) + b"\x03web\x04te",            # name runs off the end
        hdr(0x0100, 1) + q[:-2],                     # class cut
        hdr(0x0100, 1, ar=2) + q,                    # two additionals announced, none there
        os.urandom(512),
    ]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for b in bad:
        s.sendto(b, (server, 53))
    print(f"dnsbad-sent {len(bad)}")


def dnsflood(server, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    for i in range(count):
        try:
            s.sendto(dns_packet(f"flood{i}.test"), (server, 53))
        except BlockingIOError:
            time.sleep(0.01)
    got, end = 0, time.time() + 3
    while time.time() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                while s.recv(4096):
                    got += 1
            except BlockingIOError:
                pass
    print(f"dnsflood {count} {got}")


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "serve":
        serve(a[1], int(a[2]), a[3:])
    elif cmd == "client-echo":
        client_echo(a[1], int(a[2]), int(a[3]))
    elif cmd == "dns":
        dns_query(a[1], a[2], a[3])
    elif cmd == "dnstcp":
        dns_query(a[1], a[2], a[3], tcp=True)
    elif cmd == "stuff":
        stuff(a[1], int(a[2]), int(a[3]), a[4])
    elif cmd == "halfclose":
        halfclose(a[1], int(a[2]), int(a[3]))
    elif cmd == "many":
        many(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "connect":
        connect(a[1], int(a[2]))
    elif cmd == "scale":
        scale(a[1], int(a[2]), int(a[3]), a[4])
    elif cmd == "frames":
        frames(a[1:])
    elif cmd == "udpsend":
        udpsend(a[1], int(a[2]), int(a[3]))
    elif cmd == "gai":
        gai(a[1])
    elif cmd == "dnsbad":
        dnsbad(a[1])
    elif cmd == "dnsflood":
        dnsflood(a[1], int(a[2]))
    else:
        sys.exit(f"nettools: unknown command {cmd}")


if __name__ == "__main__":
    main()
