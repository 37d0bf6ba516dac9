#!/bin/bash
# cli_errors: version/help texts, and every bad flag gets one clear stderr line and exit 1
# before anything is created (no VM boots in this file).
. "$(dirname "$0")/../lib/harness.sh"

out=$(ml version); check_contains "version prints commit" "commit:" "$out"
case "$out" in "matchlock "*) ok "version starts with 'matchlock '" ;; *) fail "version output [$out]" ;; esac
out=$(ml --version); check_contains "--version" "matchlock version" "$out"
out=$(ml --help)
for c in run exec log build pull list get kill rm prune port-forward rpc version; do
	check_contains "--help lists $c" "  $c " "$out"
done
out=$(ml run --help)
for f in --image --cpus --memory --timeout --disk-size --detach --allow-host --add-host --secret \
	--publish --address --rm --dns-servers --mtu --no-network; do
	check_contains "run --help mentions $f" "$f" "$out"
done

# bad_input DESC WANT-IN-STDERR ARGS...: exit 1, exactly one stderr line containing WANT
bad_input() {
	desc=$1 want=$2; shift 2
	ml "$@" >"$T_TMP/out" 2>"$T_TMP/err" </dev/null
	rc=$?
	check_eq "$desc: exit status" 1 "$rc"
	check_contains "$desc: message" "$want" "$(cat "$T_TMP/err")"
	check_one_line "$desc: one line" "$T_TMP/err"
}
bad_input "unknown flag" "unknown flag: --foo" run --foo --image x -- true
bad_input "unknown shorthand" "unknown shorthand flag: 'z' in -z" run -z --image x
bad_input "missing image" 'required flag(s) "image" not set' run -- echo hi
bad_input "--cpus 0" "--cpus must be a finite number > 0" run --image x --cpus 0 -- true
bad_input "--cpus -1" "--cpus must be a finite number > 0" run --image x --cpus -1 -- true
bad_input "--cpus not a number" 'invalid argument "abc" for "--cpus" flag' run --image x --cpus abc -- true
bad_input "--cpus too many" "--cpus must be <= host cpus" run --image x --cpus 999 -- true
bad_input "--memory 1" "--memory must be >= 128" run --image x --memory 1 -- true
bad_input "--mtu 0" "--mtu must be > 0" run --image x --mtu 0 -- true
bad_input "--mtu 100" "--mtu must be between 576 and 65521, got 100" run --image x --mtu 100 -- true
bad_input "--disk-size 1" "--disk-size must be >= 64" run --image x --disk-size 1 -- true
bad_input "--timeout 0" "--timeout must be > 0" run --image x --timeout 0 -- true
bad_input "-d -it" "--detach cannot be combined" run --image x -d -it sh
bad_input "-dit" "--detach cannot be combined" run --image x -dit sh
bad_input "-d -i" "--detach cannot be combined" run --image x -d -i -- sh -c "echo hi"
bad_input "--no-network + --allow-host" "--no-network cannot be combined with --allow-host" run --image x --no-network --allow-host a.com -- true
bad_input "--no-network + --secret" "--no-network cannot be combined with --secret" run --image x --no-network --secret A=b@c.com -- true
bad_input "--no-network + --network-intercept" "--no-network cannot be combined with --network-intercept" run --image x --no-network --network-intercept -- true
bad_input "secret without @hosts" 'invalid secret "A=b": missing @hosts (format: NAME=VALUE@host1,host2 or NAME@host1,host2)' run --image x --secret A=b -- true
bad_input "secret with no hosts" 'invalid secret "A=b@": no hosts specified after @' run --image x --secret A=b@ -- true
bad_input "secret with an empty name" 'invalid secret "=b@c.com": secret name cannot be empty' run --image x --secret =b@c.com -- true
bad_input "secret from an unset variable" "invalid secret \"MATCHLOCK_SECRET_MISSING_XYZ@c.com\": environment variable \$MATCHLOCK_SECRET_MISSING_XYZ is not set (hint: use 'sudo -E' to preserve env vars, or pass inline: NAME=VALUE@hosts)" run --image x --secret MATCHLOCK_SECRET_MISSING_XYZ@c.com -- true
bad_input "a multi-host secret unquoted: the list splits it (upstream's CSV list flag)" 'invalid secret "d.com": missing @hosts' run --image x --secret A=b@c.com,d.com -- true
bad_input "-p bad port" "invalid port-forward specification" run --image x -p 99999 -- true
bad_input "-p bad format" "invalid port-forward specification: invalid port-forward spec format" run --image x -p 1:2:3 -- true
bad_input "--address bad" 'invalid port-forward bind address: invalid bind address "nope" (use an IP literal or localhost)' run --image x -p 8080 --address nope -- true
bad_input "--address v6" "IPv6 bind address" run --image x -p 8080 --address ::1 -- true
bad_input "--no-network + -p" "--no-network cannot be combined with --publish" run --image x --no-network -p 8080 -- true
bad_input "--dns-servers bad" 'invalid DNS server "dns.example": must be an IPv4 address' run --image x --dns-servers dns.example -- true
bad_input "-it without a tty" "-it requires a TTY" run --image x -it sh
bad_input "missing host env" "invalid environment variable: environment variable is not set \$MATCHLOCK_ENV_MISSING_ABC123" run --image x -e MATCHLOCK_ENV_MISSING_ABC123 -- true
bad_input "empty env name" "environment variable name cannot be empty" run --image x -e =v -- true
printf 'GOOD=1\nBAD_NO_VALUE_XYZ\n' >"$T_TMP/envfile"
chmod 0644 "$T_TMP/envfile"
bad_input "env file line" "parse env file line $T_TMP/envfile:2" run --image x --env-file "$T_TMP/envfile" -- true
bad_input "add-host format" "invalid add-host mapping" run --image x --add-host invalid-spec -- true
bad_input "add-host ip" 'invalid add-host ip: "999.1.1.1"' run --image x --add-host h:999.1.1.1 -- true
# allow-list entries the guest could turn against the user, refused before anything starts
bad_input "--allow-host github.*" 'invalid allow-host "github.*": a '"'*'"' in the last label lets the guest pick the top-level domain' run --image x --allow-host 'github.*' -- true
bad_input "--allow-host api.*.example.com" 'invalid allow-host "api.*.example.com": a bare '"'*'"' label is allowed only first' run --image x --allow-host 'api.*.example.com' -- true
bad_input "--allow-host *github.com" 'invalid allow-host "*github.com": keep at least two whole labels after the last' run --image x --allow-host '*github.com' -- true
bad_input "--allow-host *.com" 'invalid allow-host "*.com"' run --image x --allow-host ok.example.com,'*.com' -- true
bad_input "--allow-host bad port" 'invalid allow-host "web.test:0": bad port' run --image x --allow-host web.test:0 -- true
# QEMU's own user networking has none of the policy: a policy option must not be ignored
ML_ENV=MATCHLOCK_NET_BACKEND=qemu-user bad_input "qemu-user + --allow-host" "MATCHLOCK_NET_BACKEND=qemu-user cannot be combined with --allow-host" run --image x --allow-host web.test -- true
ML_ENV=MATCHLOCK_NET_BACKEND=qemu-user bad_input "qemu-user + -p" "MATCHLOCK_NET_BACKEND=qemu-user cannot be combined with --publish" run --image x -p 8080 -- true
bad_input "unknown command" 'unknown command "frobnicate"' frobnicate
bad_input "later command" "matchlock build is not supported yet" build .
bad_input "exec into an unknown VM" "VM not found vm-12345678: VM vm-12345678 not found" exec vm-12345678 true
# Not in the store, and its registry (a closed loopback port) cannot be reached.
bad_input "image not in store, registry down" "127.0.0.1:9/no-such-image:1.0" run --image 127.0.0.1:9/no-such-image:1.0 -- true
bad_input "malformed image reference" "invalid reference" run --image 'Bad Ref!' -- true
check_no_qemu_left "no VM was started by any bad input"
done_testing
