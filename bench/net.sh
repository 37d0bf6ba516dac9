#!/bin/bash
# bench/net.sh - issue 5's figures for `make bench`, sourced by bench/run.sh (uses its ML, W,
# now, median, ratio, row) or run alone (then it defines them). Guest networking against QEMU's
# own user networking (-netdev user, the same libslirp), same binary, VM and image, same run:
# MATCHLOCK_NET_BACKEND=qemu-user selects the baseline. In each backend ONE `matchlock run` does
# everything in the guest (Debian bookworm + python3 + iperf3, tests/lib/mkdebian.sh) against
# servers on the host's 127.0.0.1, which the guest reaches as 10.0.2.2 (--allow-host 10.0.2.2):
#  1. TCP throughput guest->server and server->guest: iperf3 -t 5 (and -R), receiver's figure;
#  2. request/response latency: 2000 1-byte round trips on one connection, p50 and p99;
#  3. connections per second: connect, 1-byte echo, close, for about 3 s.
# The floor is the same clients host to host over loopback. Backends alternate, each repeated
# BENCH_NET_REPS times (default 3); each figure is the median. The image build needs root; a user
# passes an already built layout directory in BENCH_NET_LAYOUT.
set -u
declare -F row >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NR=${BENCH_NET_REPS:-3}
NB=$W/net
mkdir -p "$NB" && chmod 0755 "$W" "$NB"
NB_PIDS=""

# One file for both sides: the host's echo server, and the client run in the guest (shipped in
# the command line, base64) and on the host for the floor. Every wait has a timeout.
cat >"$NB/netc.py" <<'PY'
import json, selectors, socket, subprocess, sys, time

def serve(port, ttl, ready):
    # Single-threaded and non-blocking, so one slow peer never holds up the others and the
    # server costs a few syscalls per message: it must not be what the bench measures.
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    open(ready, "w").write("ready\n")
    end = time.monotonic() + ttl
    pending = {}
    while time.monotonic() < end:
        for key, ev in sel.select(1.0):
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except OSError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[c] = b""
                sel.register(c, selectors.EVENT_READ, None)
                continue
            try:
                if pending[s]:  # writable again: the rest of an echo
                    pending[s] = pending[s][s.send(pending[s]):]
                else:
                    d = s.recv(65536)
                    if not d:
                        raise EOFError
                    try:
                        pending[s] = d[s.send(d):]
                    except BlockingIOError:
                        pending[s] = d
                    if pending[s]:
                        sel.modify(s, selectors.EVENT_WRITE)
                    continue
                if not pending[s]:
                    sel.modify(s, selectors.EVENT_READ)
            except (BlockingIOError, InterruptedError):
                pass
            except (OSError, EOFError):
                sel.unregister(s)
                del pending[s]
                s.close()

def recv1(s):
    if not s.recv(1):
        raise EOFError("echo server closed")

def iperf(host, port, rev):
    k = "down" if rev else "up"
    a = ["iperf3", "-c", host, "-p", str(port), "-t", "5", "-J"] + (["-R"] if rev else [])
    try:
        p = subprocess.run(a, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=40)
        j = json.loads(p.stdout)
        if "error" in j:
            raise RuntimeError(j["error"])
        e = j["end"]
        print(f"NET {k}_mbps={e['sum_received']['bits_per_second'] / 1e6:.1f} {k}_retr={e['sum_sent'].get('retransmits', 0)}", flush=True)
    except Exception as x:
        print(f"NET {k}_error={type(x).__name__}:{str(x)[:120]!r}", flush=True)

def rr(host, port, n):
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):
            s.sendall(b"x"); recv1(s)
        t = []
        for _ in range(n):
            a = time.perf_counter_ns()
            s.sendall(b"x"); recv1(s)
            t.append(time.perf_counter_ns() - a)
        s.close()
        t.sort()
        print(f"NET rr_p50_us={t[n // 2] / 1000:.0f} rr_p99_us={t[n * 99 // 100] / 1000:.0f} rr_max_us={t[-1] / 1000:.0f}", flush=True)
    except Exception as x:
        print(f"NET rr_error={type(x).__name__}:{str(x)[:120]!r}", flush=True)

def cc(host, port, secs, cap):
    n = 0
    start = time.monotonic()
    try:
        while n < cap and time.monotonic() - start < secs:
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"x"); recv1(s)
            s.close()
            n += 1
        print(f"NET cc_per_s={n / (time.monotonic() - start):.0f} cc_n={n}", flush=True)
    except Exception as x:
        r = n / (time.monotonic() - start)
        print(f"NET cc_error={type(x).__name__}:{str(x)[:120]!r} cc_n={n} cc_per_s_until_error={r:.0f}", flush=True)

if sys.argv[1] == "serve":
    serve(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
else:  # all HOST IPERF_UP_PORT IPERF_DOWN_PORT ECHO_PORT
    h, up, down, ep = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    iperf(h, up, False)
    iperf(h, down, True)
    rr(h, ep, 2000)
    cc(h, ep, 3.0, 20000)
PY

nb_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nb_stop [all]: the iperf3 servers (and with "all" the echo server too).
nb_stop() {
	local p ps="$NB_PIDS"
	[ "${1:-}" = all ] && ps="$ps ${NB_ECHO_PID:-}"
	for p in $ps; do kill "$p" 2>/dev/null; done
	for p in $ps; do wait "$p" 2>/dev/null; done
	NB_PIDS=""
	[ "${1:-}" = all ] && NB_ECHO_PID=""
	return 0
}

# nb_iperf_servers: two one-off iperf3 servers (one test each, 120 s at most) on fresh ports,
# in NB_UP and NB_DOWN; returns non-zero if either is not listening within 10 s.
nb_iperf_servers() {
	NB_UP=$(nb_port) NB_DOWN=$(nb_port)
	for p in $NB_UP $NB_DOWN; do
		timeout 120 iperf3 -s -1 -B 127.0.0.1 -p "$p" >/dev/null 2>&1 &
		NB_PIDS="$NB_PIDS $!"
	done
	for _ in $(seq 100); do
		[ "$(ss -Hltn "( sport = :$NB_UP or sport = :$NB_DOWN )" | wc -l)" = 2 ] && return 0
		sleep 0.1
	done
	return 1
}

# nb_get FILE KEY: the value of KEY=... on the NET lines of FILE (empty if absent).
nb_get() { grep -o "[[:space:]]$2=[^ ]*" "$1" 2>/dev/null | head -1 | cut -d= -f2; }

# nb_med BACKEND KEY: median of KEY over that backend's runs that reported it.
nb_med() {
	local v
	v=$(for f in "$NB/$1".*.out; do nb_get "$f" "$2"; done | grep .) && echo "$v" | median
}

# nb_ratio A B: A/B, or "-" when either figure is missing.
nb_ratio() { if [ -n "$1" ] && [ -n "$2" ]; then ratio "$1" "$2"; else echo -; fi; }

# nb_fig BACKEND KEY: the median, or "failed" when a run reported an error for that test. The
# connection rate of a run whose loop was cut short by a refused connect is its rate until then
# (the refusals are counted on a row of their own).
nb_fig() {
	local t=${2%%_*} v
	if [ "$2" = cc_per_s ]; then
		v=$(for f in "$NB/$1".*.out; do nb_get "$f" cc_per_s; nb_get "$f" cc_per_s_until_error; done | grep .) &&
			echo "$v" | median
	elif grep -qs "[[:space:]]${t}_error=" "$NB/$1".*.out; then
		echo failed
	else
		nb_med "$1" "$2"
	fi
}

# nb_clean BACKEND: "runs whose connection loop saw no error/runs".
nb_clean() {
	local n=0 ok=0 f
	for f in "$NB/$1".*.out; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		grep -q '[[:space:]]cc_per_s=' "$f" && ok=$((ok + 1))
	done
	echo "$ok/$n"
}

nb_guest_run() { # BACKEND REP
	local env=() allow=(--allow-host 10.0.2.2) out=$NB/$1.$2.out
	# QEMU's user networking reaches 10.0.2.2 (the host's loopback) by itself, and matchlock
	# refuses policy options with that backend
	[ "$1" = qemu ] && env=(MATCHLOCK_NET_BACKEND=qemu-user) && allow=()
	nb_iperf_servers || { echo "# net bench: iperf3 servers did not start" >&2; return 1; }
	local cmd="echo NET cpus=\$(nproc); python3 -c 'import base64; exec(base64.b64decode(\"$NB_B64\"))' all 10.0.2.2 $NB_UP $NB_DOWN $NB_ECHO"
	env "${env[@]}" timeout 150 "$ML" run --image "$NB_IMG" "${allow[@]}" --timeout 140 -- sh -c "$cmd" \
		>"$out" 2>"$NB/$1.$2.err" || echo "# net bench: $1 run $2 exited $?: $(tail -2 "$NB/$1.$2.err")" >&2
	grep -h '_error=' "$out" | sed "s/^/# net bench: $1 run $2: /" >&2
	nb_stop
}

nb_main() {
	local layout
	layout=${BENCH_NET_LAYOUT:-}
	[ -n "$layout" ] || layout=$(sh "$REPO/tests/lib/mkdebian.sh") ||
		{ echo "# net bench skipped: no Debian image (as root, tests/lib/mkdebian.sh builds it; a user then passes its directory in BENCH_NET_LAYOUT)"; return 0; }
	NB_IMG=bench/debian-net:bookworm
	tar -C "$layout" -cf "$NB/deb.tar" . && $ML image import "$NB_IMG" "$NB/deb.tar" >/dev/null 2>"$NB/import.err" ||
		{ echo "# net bench skipped: image import failed: $(tail -1 "$NB/import.err")"; return 0; }
	rm -f "$NB/deb.tar"
	NB_B64=$(base64 -w0 "$NB/netc.py")
	trap 'nb_stop all; rm -rf "$W"' EXIT

	NB_ECHO=$(nb_port)
	timeout 900 python3 "$NB/netc.py" serve "$NB_ECHO" 880 "$NB/echo.ready" &
	NB_ECHO_PID=$!
	for _ in $(seq 100); do [ -s "$NB/echo.ready" ] && break; sleep 0.1; done
	[ -s "$NB/echo.ready" ] || { echo "# net bench: echo server did not start"; nb_stop all; return 0; }

	# Warm: the rootfs of the image is built once, outside the figures.
	timeout 150 "$ML" run --image "$NB_IMG" --timeout 140 -- true >/dev/null 2>&1
	for i in $(seq "$NR"); do
		nb_guest_run ours "$i"
		nb_guest_run qemu "$i"
	done
	nb_iperf_servers && timeout 100 python3 "$NB/netc.py" all 127.0.0.1 "$NB_UP" "$NB_DOWN" "$NB_ECHO" >"$NB/floor.1.out" 2>&1
	nb_stop all
	trap 'rm -rf "$W"' EXIT

	echo "# net: guest $(nb_get "$NB/ours.1.out" cpus) vCPU, $NR runs per backend (median), baseline = MATCHLOCK_NET_BACKEND=qemu-user; load average now $(cut -d" " -f1-3 /proc/loadavg)"
	local k name goal o q f
	for k in up_mbps down_mbps rr_p50_us rr_p99_us cc_per_s; do
		case $k in
		up_mbps) name="TCP guest->server (Mbit/s)" goal=">= 1.0" ;;
		down_mbps) name="TCP server->guest (Mbit/s)" goal=">= 1.0" ;;
		rr_p50_us) name="1-byte round trip p50 (us)" goal="<= 1.1" ;;
		rr_p99_us) name="1-byte round trip p99 (us)" goal="<= 1.1" ;;
		cc_per_s) name="connections per second" goal=">= 1.0" ;;
		esac
		o=$(nb_fig ours "$k") q=$(nb_fig qemu "$k") f=$(nb_fig floor "$k")
		row "$name" "${o:--}" "${q:--}" "QEMU -netdev user" "$(nb_ratio "${o/failed/}" "${q/failed/}")" "$goal"
		row "$name" "${o:--}" "${f:--}" "floor: host to host, loopback" "$(nb_ratio "${o/failed/}" "${f/failed/}")" "-"
	done
	row "connection loops with no refusal" "$(nb_clean ours)" "$(nb_clean qemu)" "QEMU -netdev user" "-" "all"
	# Every run's figures, so a median over a wide spread is visible as such.
	for f in "$NB"/ours.*.out "$NB"/qemu.*.out "$NB"/floor.*.out; do
		[ -f "$f" ] && echo "#   $(basename "$f" .out): $(grep -h '^NET' "$f" | sed 's/^NET //' | tr '\n' ' ')"
	done
}
nb_main
