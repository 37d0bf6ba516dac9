#!/bin/bash
# pull_run: `run --image localhost:PORT/...` pulls a missing image (pull lines on stderr, only the
# guest's output on stdout) and runs it with its Entrypoint/Cmd/Env/User/WorkingDir; a cached
# image is not pulled again; `--pull` re-pulls a tag that moved; a multi-layer image (gzip,
# uncompressed and zstd layers) keeps whiteouts, hard links and setuid/setgid bits; a
# multi-platform index gives the linux/amd64 image.
. "$(dirname "$0")/../lib/harness.sh"
. "$REPO/tests/lib/registry.sh"
private_cache cache

reg_start http || { fail "plain HTTP registry starts"; done_testing; exit 1; }
H=$REG HPORT=${REG#*:}
mkimage config cfg && mkimage multilayer ml && mkimage platforms plat || fail "build test images"
reg_push "$T_TMP/img-cfg" latest "$H" app/cfg:1 && reg_push "$T_TMP/img-ml" latest "$H" app/ml:1 &&
	reg_push "$T_TMP/img-plat" latest "$H" app/multi:1 --all || fail "push test images"

# Missing image: run pulls it (named with "localhost", a port and a path).
IMG=localhost:$HPORT/app/cfg:1
out=$(ml run --image "$IMG" 2>"$T_TMP/e"); rc=$?
check_eq "run pulls a missing image: exit 0" 0 "$rc"
check_eq "run: Entrypoint + Cmd of the pulled image" "entry:from-cmd" "$out"
check_eq "run: a pull in a script prints nothing on stderr" "" "$(grep -v '^Built rootfs' "$T_TMP/e")"
check_contains "run: the pulled image is in image ls" "$IMG" "$(ml image ls 2>&1)"
mf_before=$(grep -c '/manifests/' "$REG_LOG")
out=$(ml run --image "$IMG" --entrypoint sh -- -c 'echo "$IMG_VAR $(id -u) $(pwd)"; echo "$PATH"' 2>"$T_TMP/e"); rc=$?
check_eq "run of the pulled image: Env, User, WorkingDir" "from-image 65534 /work" "$(echo "$out" | head -1)"
check_contains "run of the pulled image: image PATH" "/bin" "$(echo "$out" | sed -n 2p)"
check_eq "second run: no pull (no manifest request)" "$mf_before" "$(grep -c '/manifests/' "$REG_LOG")"
out=$(ml run --image "$IMG" -- a b 2>/dev/null)
check_eq "run: args replace Cmd, keep Entrypoint" "entry:a b" "$out"

# The tag moves in the registry: run uses the cached image until --pull.
reg_push "$T_TMP/img-ml" latest "$H" app/cfg:1 || fail "re-push app/cfg:1"
out=$(ml run --image "$IMG" --entrypoint '' -- sh -c 'if [ -e /ml/late ]; then echo new; else echo old; fi' 2>"$T_TMP/e")
check_eq "without --pull the cached image runs" "old" "$out"
out=$(ml run --pull --image "$IMG" --entrypoint '' -- sh -c 'if [ -e /ml/late ]; then echo new; else echo old; fi' 2>"$T_TMP/e"); rc=$?
check_eq "run --pull: exit 0" 0 "$rc"
check_eq "run --pull runs the re-pulled image" "new" "$out"

# Multi-layer image: whiteouts, opaque dir, hard link, setuid/setgid, three compressions.
out=$(ml run --image "$H/app/ml:1" -- sh -c 'ls /ml; echo --; ls /ml/opq; echo --; stat -c "%i %h" /ml/orig /ml/hard; stat -c "%a %u:%g" /ml/suid /ml/sgid /ml/late; cat /ml/hard /ml/late' 2>"$T_TMP/e"); rc=$?
check_eq "multi-layer image runs" 0 "$rc"
check_eq "whiteout removes, opaque dir hides, the rest kept" $'hard\nlate\nopq\norig\nsgid\nsuid\n--\nnew\n--' "$(echo "$out" | sed -n 1,9p)"
i1=$(echo "$out" | sed -n 10p); i2=$(echo "$out" | sed -n 11p)
check_eq "hard link shares the inode" "$i1" "$i2"
check_contains "hard link count 2" " 2" "$i1"
check_eq "setuid bit kept" "4755 0:0" "$(echo "$out" | sed -n 12p)"
check_eq "setgid bit and group kept" "2755 0:50" "$(echo "$out" | sed -n 13p)"
check_eq "uncompressed + zstd layers: owner and mode" "640 1000:1000" "$(echo "$out" | sed -n 14p)"
check_eq "layer contents" $'original\nzstd layer' "$(echo "$out" | sed -n 15,16p)"

# Multi-platform index: linux/arm64 and linux/arm/v7 come first; linux/amd64 must be chosen.
out=$(ml pull "$H/app/multi:1" 2>"$T_TMP/e"); rc=$?
check_eq "pull of a multi-platform index: exit 0" 0 "$rc"
out=$(ml run --image "$H/app/multi:1" -- sh -c 'uname -m; cat /platform' 2>"$T_TMP/e"); rc=$?
check_eq "multi-platform index: the linux/amd64 image runs" $'x86_64\nlinux/amd64' "$out"
check_no_qemu_left "no VM left"
done_testing
