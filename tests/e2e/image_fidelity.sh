#!/bin/bash
# image_fidelity: an image's files in the guest have exactly the owner, mode, type and link
# target of its layer tar headers; whiteouts and opaque dirs apply; the image config (Entrypoint,
# Cmd, Env, User, WorkingDir) is honoured; `image import` reads a file or stdin.
. "$(dirname "$0")/../lib/harness.sh"
BASE=$ML_PREFIX/lib/matchlock/images/default.tar

python3 "$REPO/tests/lib/mkimage.py" fidelity "$BASE" "$T_TMP/fid.tar" "$T_TMP/expect"
chmod 0644 "$T_TMP/fid.tar" "$T_TMP/expect"
out=$(ml image import test/fidelity:1 "$T_TMP/fid.tar" 2>"$T_TMP/e"); rc=$?
check_eq "import from a file" 0 "$rc"
check_contains "import prints the tag" "Imported: test/fidelity:1" "$out"
check_contains "import prints layers" "Layers: 2" "$out"
ml run --image test/fidelity:1 -- sh -c 'for p in $(find /fid | sort); do l=""; [ -L $p ] && l=" -> $(readlink $p)"; [ "$p" = /fid/hard ] || echo "$(stat -c "%n %u %g %a %F" $p)$l"; done' >"$T_TMP/seen" 2>"$T_TMP/e"
if diff "$T_TMP/expect" "$T_TMP/seen" >"$T_TMP/diff"; then ok "owner/mode/type/links match the tar headers"; else fail "guest view differs from the tar headers: $(cat "$T_TMP/diff" "$T_TMP/e" | head -20)"; fi
out=$(ml run --image test/fidelity:1 -- sh -c 'stat -c "%i %h" /fid/plain /fid/hard; sha256sum /fid/big | cut -c1-16; cat /fid/hard; readlink /bin/sh; stat -c "%u:%g %a" /etc/passwd /etc/shadow /bin/busybox')
i1=$(echo "$out" | sed -n 1p); i2=$(echo "$out" | sed -n 2p)
check_eq "hard link shares the inode" "$i1" "$i2"
check_contains "hard link count 2" " 2" "$i1"
want=$(python3 -c 'import hashlib;print(hashlib.sha256(bytes(range(256))*8192).hexdigest()[:16])')
check_contains "2 MiB file content intact" "$want" "$out"
check_contains "busybox symlink kept" "/bin/busybox" "$out"
check_contains "/etc/passwd 0:0 644" "0:0 644" "$out"
check_contains "/etc/shadow mode 640" " 640" "$out"
check_contains "/bin/busybox 755" "0:0 755" "$out"

python3 "$REPO/tests/lib/mkimage.py" whiteout "$BASE" "$T_TMP/wo.tar"
chmod 0644 "$T_TMP/wo.tar"
ml image import test/whiteout <"$T_TMP/wo.tar" >/dev/null 2>"$T_TMP/e"; rc=$?
check_eq "import from stdin" 0 "$rc"
check_contains "stdin import message" "Importing test/whiteout from stdin..." "$(cat "$T_TMP/e")"
out=$(ml run --image test/whiteout -- sh -c 'ls /wo; echo --; ls /opq; echo --; ls /bin/vi 2>&1 || true')
check_eq "whiteout removes, opaque hides, others kept" $'kept\n--\nnew\n--\nls: /bin/vi: No such file or directory' "$out"

python3 "$REPO/tests/lib/mkimage.py" config "$BASE" "$T_TMP/cfg.tar"
chmod 0644 "$T_TMP/cfg.tar"
ml image import test/config:1 "$T_TMP/cfg.tar" >/dev/null 2>&1
out=$(ml run --image test/config:1)
check_eq "Entrypoint + Cmd" "entry:from-cmd" "$out"
out=$(ml run --image test/config:1 -- a b)
check_eq "args replace Cmd, keep Entrypoint" "entry:a b" "$out"
out=$(ml run --image test/config:1 --entrypoint sh -- -c 'echo "$IMG_VAR $(id -u) $(pwd)"')
check_eq "Env, User, WorkingDir from the image" "from-image 65534 /work" "$out"
out=$(ml run --image test/config:1 --entrypoint sh -u 0 -w / -- -c 'echo "$(id -u) $(pwd)"')
check_eq "-u and -w override the image" "0 /" "$out"
check_no_qemu_left "no VM left"
done_testing
