#!/bin/bash
# run_config: environment, working dir, user, hostname, /etc/hosts, resolv.conf, cpu and
# memory limits and the in-guest security defaults, as a user of `run` sets them.
. "$(dirname "$0")/../lib/harness.sh"
IMG=$ML_DEFAULT_IMAGE

printf '# comment\nFILE_ONLY=from-file\nMATCHLOCK_ENV_FILE_HOST\nSAME=file\n' >"$T_TMP/env"
chmod 0644 "$T_TMP/env"
out=$(ML_ENV="MATCHLOCK_ENV_FILE_HOST=from-host MATCHLOCK_HOST_ENV_TEST=host2" ml run --image $IMG \
	--env-file "$T_TMP/env" -e SAME=flag -e FOO=bar -e MATCHLOCK_HOST_ENV_TEST -w /tmp \
	--hostname override.internal --add-host api.internal:10.0.0.10 --add-host db.internal:10.0.0.11 \
	--dns-servers 1.1.1.1,1.0.0.1 -- sh -c 'echo "$FILE_ONLY|$MATCHLOCK_ENV_FILE_HOST|$SAME|$FOO|$MATCHLOCK_HOST_ENV_TEST"; pwd; hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf; echo "PATH=$PATH"')
check_contains "env file, host env, -e wins" "from-file|from-host|flag|bar|host2" "$out"
check_contains "-w sets the working dir" $'\n/tmp\n' "$out"
check_contains "--hostname" $'\noverride.internal\noverride.internal\n' "$out"
check_contains "/etc/hosts first line" "127.0.0.1 localhost localhost.localdomain override.internal" "$out"
check_contains "--add-host 1" "10.0.0.10 api.internal" "$out"
check_contains "--add-host 2" "10.0.0.11 db.internal" "$out"
check_contains "--dns-servers 1" "nameserver 1.1.1.1" "$out"
check_contains "--dns-servers 2" "nameserver 1.0.0.1" "$out"
check_not_contains "custom DNS replaces the default" "8.8.8.8" "$out"
check_contains "image PATH kept" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$out"

out=$(ml run --image $IMG -- sh -c 'pwd; hostname; cat /etc/hosts; cat /etc/resolv.conf; id -u')
check_contains "default cwd is /" $'/\nvm-' "$out"
check_contains "default hostname is the VM id" "localhost localhost.localdomain vm-" "$out"
check_contains "default DNS 8.8.8.8" "nameserver 8.8.8.8" "$out"
check_contains "default DNS 8.8.4.4" "nameserver 8.8.4.4" "$out"
case "$out" in *$'\n0') ok "default user is root" ;; *) fail "default user: [$out]" ;; esac

out=$(ml run --image $IMG -u nobody -- sh -c 'id -u; id -g; echo "HOME=$HOME"; touch /root/x 2>&1 || echo DENIED')
check_contains "-u nobody: uid 65534" $'65534\n65534' "$out"
check_contains "-u nobody: HOME set" "HOME=/nonexistent" "$out"
check_contains "-u nobody cannot write /root" "DENIED" "$out"
out=$(ml run --image $IMG -u 1234:4321 -- sh -c 'id -u; id -g')
check_eq "-u uid:gid" $'1234\n4321' "$out"
ml run --image $IMG -u no-such-user -- true >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "unknown user fails" 1 "$rc"
check_contains "unknown user says so" "no-such-user" "$(cat "$T_TMP/e")"

out=$(ml run --image $IMG --cpus 0.5 --memory 256 --disk-size 300 -- sh -c 'cat /sys/fs/cgroup/sandbox/cpu.max; nproc; grep MemTotal /proc/meminfo; df -m / | tail -1')
disk=$(printf '%s' "$out" | awk '/overlay/ {print $2}')
if [ -n "$disk" ] && [ "$disk" -gt 250 ] && [ "$disk" -le 300 ]; then ok "--disk-size 300: writable root of ${disk} MB"; else fail "--disk-size 300: df says [$disk]"; fi
check_contains "--cpus 0.5 = cpu.max 50000 100000" "50000 100000" "$out"
check_contains "--cpus 0.5 = 1 vCPU" $'\n1\n' "$out"
mem=$(printf '%s' "$out" | awk '/MemTotal/ {print $2}')
if [ -n "$mem" ] && [ "$mem" -lt 262144 ] && [ "$mem" -gt 150000 ]; then ok "--memory 256 ($mem kB)"; else fail "--memory 256: MemTotal [$mem]"; fi

out=$(ml run --image $IMG -- sh -c 'grep -E "^(Seccomp|NoNewPrivs|CapBnd):" /proc/self/status')
check_contains "seccomp filter on by default" $'Seccomp:\t2' "$out"
check_contains "no_new_privs on by default" $'NoNewPrivs:\t1' "$out"
check_not_contains "bounding set dropped" "000001ffffffffff" "$out"
out=$(ml run --image $IMG --privileged -- sh -c 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status')
check_contains "--privileged: no seccomp" $'Seccomp:\t0' "$out"
check_contains "--privileged: no no_new_privs" $'NoNewPrivs:\t0' "$out"
out=$(ml run --image $IMG -- sh -c 'mount -t tmpfs x /mnt 2>&1 && echo MOUNTED || echo REFUSED')
check_contains "mount is refused without --privileged" REFUSED "$out"
out=$(ml run --image $IMG --no-network -- sh -c 'ls /sys/class/net; ip link show lo | grep -o "state [A-Z]*\|LOOPBACK,UP"')
check_contains "--no-network: lo present and up" $'lo\nLOOPBACK,UP' "$out"
check_not_contains "--no-network: no eth0" "eth0" "$out"
check_no_qemu_left "no VM left"
done_testing
