#!/bin/bash
# vm_netctl: `allow-list add|delete` and `port-forward` change a running VM from another shell,
# through its control socket, in the namespace test world: a guest request flips from blocked
# to allowed and back at once; a forward added at run time carries TCP both ways and goes away
# with its command; the messages and output lines are upstream's.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/networld.sh"
world_up_or_exit
IMG=$ML_DEFAULT_IMAGE

mlw_bg run --image $IMG --rm=false --allow-host web.test -- true
owner=$ML_PID
id=
for _ in $(seq 1 240); do
	id=$(as_user_world env HOME="$ML_HOME" "$ML_BIN" list --running 2>/dev/null | awk -v p=$owner '$NF == p {print $1}')
	[ -n "$id" ] && mlw exec "$id" true >/dev/null 2>&1 && break
	sleep 0.25
done
[ -n "$id" ] && ok "a --rm=false VM with --allow-host web.test ($id)" || fail "the VM never came up"

probe() { mlw exec "$id" -- sh -c "timeout 10 wget -q -O - http://$1/ 2>&1 || echo BLOCKED"; }
check_contains "web.test allowed at start" "hello from web" "$(probe web.test)"
check_contains "other.test blocked at start" BLOCKED "$(probe other.test)"

out=$(mlw allow-list add "$id" other.test,web.test); rc=$?
check_eq "allow-list add: exit 0" 0 "$rc"
check_contains "allow-list add: the added hosts" "Added to $id: other.test" "$out"
check_contains "allow-list add: the current list" "Current allow-list: web.test,other.test" "$out"
check_contains "other.test allowed at once" "hello from other" "$(probe other.test)"
out=$(mlw allow-list add "$id" web.test)
check_contains "allow-list add of a present host" "No new hosts were added to $id" "$out"
out=$(mlw allow-list delete "$id" other.test)
check_contains "allow-list delete: removed" "Removed from $id: other.test" "$out"
check_contains "allow-list delete: current" "Current allow-list: web.test" "$out"
check_contains "other.test blocked again at once" BLOCKED "$(probe other.test)"
out=$(mlw allow-list delete "$id" web.test)
check_contains "deleting the last entry: all hosts allowed" "Current allow-list: (empty: all hosts allowed)" "$out"
check_contains "an empty list allows every public host" "hello from other" "$(probe other.test)"
mlw allow-list add "$id" ' , ' >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "allow-list add without hosts: message" "1 invalid allow-list host: expected one or more hosts (comma-separated)" "$rc $(cat "$T_TMP/e")"
mlw allow-list add vm-0000dead web.test >/dev/null 2>"$T_TMP/e"
check_eq "allow-list on an unknown VM" "VM not found vm-0000dead: VM vm-0000dead not found" "$(cat "$T_TMP/e")"

# port-forward at run time: a guest echo server, reached from the host side as the test user
mlw exec "$id" -- sh -c 'nc -ll -p 8080 -e /bin/cat >/dev/null 2>&1 &' >/dev/null
port=$(in_world python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mlw_bg port-forward "$id" "$port:8080" 2>"$T_TMP/pf.err"
pf=$ML_PID
for _ in $(seq 1 40); do grep -q Forwarding "$T_TMP/pf.err" && break; sleep 0.25; done
check_eq "port-forward: the Forwarding line" "Forwarding 127.0.0.1:$port -> sandbox:8080" "$(head -1 "$T_TMP/pf.err")"
echo_once() {
	in_world python3 - "$1" <<'P'
import socket, sys, time
for _ in range(60):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        s.sendall(b"through the forward\n"); s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
        if data:
            print(data.decode().strip()); break
    except OSError:
        pass
    time.sleep(0.5)
P
}
check_eq "port-forward: TCP both ways" "through the forward" "$(echo_once "$port")"
mlw port-forward "$id" "$port:8080" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "a second forward of the same port: exit 1" 1 "$rc"
check_contains "... says the port is taken" "start port-forward listener" "$(cat "$T_TMP/e")"
mlw port-forward "$id" 0x:80 >/dev/null 2>"$T_TMP/e"
check_contains "a bad spec" "invalid port-forward specification" "$(cat "$T_TMP/e")"
mlw port-forward "$id" >/dev/null 2>"$T_TMP/e"
check_contains "port-forward without a spec" "requires at least 2 arg(s)" "$(cat "$T_TMP/e")"
kill -TERM $pf; wait $pf; rc=$?
check_eq "port-forward ends with SIGTERM: exit 0" 0 "$rc"
sleep 0.5
out=$(in_world python3 -c "import socket,sys
try:
    socket.create_connection(('127.0.0.1', $port), timeout=3); print('open')
except OSError:
    print('closed')")
check_eq "the forward went away with its command" closed "$out"

# Interception on without an allow-list (--network-intercept): every host is allowed, and the
# list can be started at run time.
mlw_bg run --image $IMG --rm=false --network-intercept -- true
owner2=$ML_PID
id2=
for _ in $(seq 1 240); do
	id2=$(as_user_world env HOME="$ML_HOME" "$ML_BIN" list --running 2>/dev/null | awk -v p=$owner2 '$NF == p {print $1}')
	[ -n "$id2" ] && mlw exec "$id2" true >/dev/null 2>&1 && break
	sleep 0.25
done
probe2() { mlw exec "$id2" -- sh -c "timeout 10 wget -q -O - http://$1/ 2>&1 || echo BLOCKED"; }
check_contains "--network-intercept alone: other.test allowed" "hello from other" "$(probe2 other.test)"
out=$(mlw allow-list add "$id2" web.test 2>&1); rc=$?
check_eq "--network-intercept alone: allow-list add works" "0 Added to $id2: web.test" "$rc $(echo "$out" | head -1)"
check_contains "... and other.test is blocked now" BLOCKED "$(probe2 other.test)"
check_contains "... web.test still allowed" "hello from web" "$(probe2 web.test)"
kill -TERM $owner2; wait $owner2

kill -TERM $owner; wait $owner
check_eq "the VM stopped" stopped "$(as_user_world env HOME="$ML_HOME" "$ML_BIN" list | awk -v id="$id" '$1 == id {print $2}')"
check_no_qemu_left "no VM left"
done_testing
