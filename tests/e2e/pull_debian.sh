#!/bin/bash
# pull_debian: a real distribution image — Debian bookworm minbase + python3, built with
# debootstrap (tests/lib/mkdebian.sh, cached across runs) — pushed to a loopback registry, pulled
# and run: `python3 -c 'print(6*7)'`, its Cmd (python3 with an empty stdin exits 0), WorkingDir,
# Env, symlinks, owners and setuid bits of the distribution's files.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache

s=$(date +%s)
layout=$(sh "$REPO/tests/lib/mkdebian.sh" 2>"$T_TMP/deb.err") || { fail "build the Debian image: $(cat "$T_TMP/deb.err")"; done_testing; exit 1; }
echo "# Debian image ready in $(( $(date +%s) - s ))s: $layout"
reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
H=$REG
reg_push "$layout" bookworm "$H" debian/python:bookworm || fail "push the Debian image"
want=$(reg_manifest_digest "$H" debian/python:bookworm)

out=$(ml pull "$H/debian/python:bookworm" 2>"$T_TMP/e"); rc=$?
check_eq "pull the Debian image: exit 0" 0 "$rc"
check_contains "pull the Debian image: Digest" "Digest: $want" "$out"
out=$(ml run --image "$H/debian/python:bookworm" -- python3 -c 'print(6*7)' 2>"$T_TMP/e"); rc=$?
check_eq "python3 -c 'print(6*7)'" "42" "$out"
check_eq "python3 run: exit 0" 0 "$rc"
ml run --image "$H/debian/python:bookworm" >"$T_TMP/o" 2>"$T_TMP/e"; rc=$?
check_eq "image Cmd python3 with an empty stdin exits 0" 0 "$rc"
out=$(ml run --image "$H/debian/python:bookworm" -- sh -c 'pwd; id -u; echo "$LANG"; python3 hello.py; readlink /usr/bin/python3; stat -c "%u:%g %a" /usr/bin/python3.11 /usr/bin/passwd /etc/shadow; grep -c . /etc/os-release >/dev/null && . /etc/os-release && echo "$VERSION_CODENAME"' 2>"$T_TMP/e"); rc=$?
check_eq "WorkingDir from the image" "/srv/app" "$(echo "$out" | sed -n 1p)"
check_eq "User root" "0" "$(echo "$out" | sed -n 2p)"
check_eq "Env from the image" "C.UTF-8" "$(echo "$out" | sed -n 3p)"
check_eq "a script in WorkingDir runs" "hello from the image" "$(echo "$out" | sed -n 4p)"
check_eq "python3 symlink kept" "python3.11" "$(echo "$out" | sed -n 5p)"
check_eq "python3.11 owner and mode" "0:0 755" "$(echo "$out" | sed -n 6p)"
check_eq "setuid /usr/bin/passwd kept" "0:0 4755" "$(echo "$out" | sed -n 7p)"
check_eq "/etc/shadow group shadow, mode 640" "0:42 640" "$(echo "$out" | sed -n 8p)"
check_eq "it is bookworm" "bookworm" "$(echo "$out" | sed -n 9p)"
out=$(ml run --image "$H/debian/python:bookworm" -u nobody -- python3 -c 'import os; print(os.getuid())' 2>"$T_TMP/e")
check_eq "python3 as nobody" "65534" "$out"
check_no_qemu_left "no VM left"
done_testing
