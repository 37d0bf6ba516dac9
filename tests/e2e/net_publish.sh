#!/bin/bash
# net_publish: `run -p [LOCAL:]REMOTE` (and `--address`) publishes guest TCP ports on the host
# side: in the fake internet of tests/lib/networld.sh a client next to matchlock reaches a
# busybox echo server in the guest through 127.0.0.1:LOCAL (payload back intact after a
# half-close, several clients at once); a forward to a guest port nobody listens on fails that
# connection only; --address binds elsewhere (a client from another address reaches the guest
# too); a taken local port is an error; after SIGTERM the listeners are gone. (`matchlock
# port-forward <id>` needs the cross-process VM commands, which are not built yet.)
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
IMG=$ML_DEFAULT_IMAGE
NT="/usr/bin/python3 $REPO/tests/lib/nettools.py"

# wait_for FILE TEXT SECONDS: until FILE contains TEXT.
wait_for() {
	for _ in $(seq 1 $(($3 * 4))); do grep -qF "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done
	return 1
}

# echo_until_ok ADDR PORT: retry one echo round trip (the guest's nc may still be starting).
echo_until_ok() {
	for _ in $(seq 1 30); do
		r=$(as_user_world $NT client-echo "$1" "$2" 100000)
		[ "$r" = "echo-ok 100000" ] && break
		sleep 1
	done
	echo "$r"
}

mlw_bg run --image $IMG --rm=false -p 18080:8080 -p 18081:8081 -- \
	sh -c "nc -ll -p 8080 -e /bin/cat & sleep 150" >"$T_TMP/p1.out" 2>"$T_TMP/p1.err"
P1=$ML_PID
if wait_for "$T_TMP/p1.err" "Forwarding 127.0.0.1:18080 -> sandbox:8080" 60; then
	ok "-p 18080:8080: Forwarding line"
else
	fail "-p 18080:8080: Forwarding line (stderr: $(head -c 400 "$T_TMP/p1.err"))"
fi
check_contains "-p 18081:8081: Forwarding line" "Forwarding 127.0.0.1:18081 -> sandbox:8081" "$(cat "$T_TMP/p1.err")"
check_eq "echo through 127.0.0.1:18080 (client half-closes)" "echo-ok 100000" "$(echo_until_ok 127.0.0.1 18080)"
s=$(date +%s)
r=$(as_user_world $NT client-echo 127.0.0.1 18081 1000)
check_contains "a forward to a guest port nobody listens on fails that connection" "echo-bad" "$r"
e=$(($(date +%s) - s))
if [ "$e" -lt 8 ]; then ok "... within ${e}s"; else fail "... only after ${e}s"; fi
check_eq "the other forward still works afterwards" "echo-ok 100000" "$(as_user_world $NT client-echo 127.0.0.1 18080 100000)"
cpids=""
for i in 1 2 3 4 5; do as_user_world $NT client-echo 127.0.0.1 18080 200000 >"$T_TMP/c$i" & cpids="$cpids $!"; done
for p in $cpids; do wait "$p"; done  # not a bare wait: matchlock runs in the background too
check_eq "5 clients at once all get their bytes back" "5" "$(cat "$T_TMP"/c[1-5] | grep -c '^echo-ok 200000$')"

# stop_run PID DESC: SIGTERM ends a --rm=false run within 10 s, exit 0 (else SIGKILL, a failure)
stop_run() {
	kill -TERM "$1"
	for _ in $(seq 1 40); do kill -0 "$1" 2>/dev/null || break; sleep 0.25; done
	if kill -0 "$1" 2>/dev/null; then
		kill -9 "$1"; wait "$1" 2>/dev/null
		fail "$2: SIGTERM ends the --rm=false run (still running 10 s later; killed)"
	else
		wait "$1"; check_eq "$2: SIGTERM ends the --rm=false run, exit 0" 0 "$?"
	fi
}
stop_run "$P1" "-p run"
check_contains "after the run: nothing listens on 18080" "echo-bad" "$(as_user_world $NT client-echo 127.0.0.1 18080 10)"

# --address: the forward binds on the host's own external address (and not on 127.0.0.1), so
# a client out in the internet reaches it; one number = same port both sides
mlw_bg run --image $IMG --rm=false --address $W_HOST_ADDR -p 8090 -- \
	sh -c "nc -ll -p 8090 -e /bin/cat & sleep 150" >"$T_TMP/p2.out" 2>"$T_TMP/p2.err"
P2=$ML_PID
if wait_for "$T_TMP/p2.err" "Forwarding $W_HOST_ADDR:8090 -> sandbox:8090" 60; then
	ok "--address $W_HOST_ADDR -p 8090: Forwarding line"
else
	fail "--address $W_HOST_ADDR -p 8090: Forwarding line (stderr: $(head -c 400 "$T_TMP/p2.err"))"
fi
sleep 3
check_eq "echo through $W_HOST_ADDR:8090 from the host side" "echo-ok 100000" "$(as_user_world $NT client-echo $W_HOST_ADDR 8090 100000)"
check_eq "echo through $W_HOST_ADDR:8090 from the internet" "echo-ok 100000" "$(in_net $NT client-echo $W_HOST_ADDR 8090 100000)"
check_contains "--address $W_HOST_ADDR: nothing on 127.0.0.1:8090" "echo-bad" "$(as_user_world $NT client-echo 127.0.0.1 8090 10)"
stop_run "$P2" "--address run"

# a local port that is taken (the world's recorder holds 127.0.0.1:8080)
timeout 90 ip netns exec "$W_NS" setpriv --reuid="$ML_USER" --regid="$ML_USER" --init-groups --inh-caps=-all \
	env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$ML_HOME" XDG_CACHE_HOME="$ML_CACHE" "$ML_BIN" \
	run --image $IMG -p 8080:8080 -- sleep 5 >/dev/null 2>"$T_TMP/p3.err"; rc=$?
check_eq "-p on a taken local port: exit 1" 1 "$rc"
check_contains "-p on a taken local port: says so" "start port-forward listener" "$(cat "$T_TMP/p3.err")"
check_no_qemu_left "no VM left"
done_testing
