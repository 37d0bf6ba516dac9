#!/bin/bash
# vfs_git: real tools in a host_fs workspace of a real VM (Debian bookworm image): `git clone`
# of a repository the test makes on the host, then status, commit, branch and log there, and
# the host's git reads the result; a Python venv with `pip install` of a wheel the test builds
# (no network); an npm-style tree of many small files unpacked with tar.
. "$(dirname "$0")/../lib/harness.sh"
layout=$(sh "$REPO/tests/lib/mkdebian.sh" 2>"$T_TMP/deb.err") || { fail "build the Debian image: $(cat "$T_TMP/deb.err")"; done_testing; exit 1; }
tar -C "$layout" -cf "$T_TMP/deb.tar" . && chmod 0644 "$T_TMP/deb.tar"
ml image import vfs/debian:1 "$T_TMP/deb.tar" >/dev/null 2>"$T_TMP/e" || { fail "import the Debian image: $(cat "$T_TMP/e")"; done_testing; exit 1; }
IMG=vfs/debian:1
G="git -c safe.directory=* -c user.email=t@example.invalid -c user.name=t"

W=$T_TMP/ws
mkdir -p "$W"
# a repository with some history, made on the host
R=$T_TMP/upstream
mkdir -p "$R/src/pkg"
(cd "$R" && $G init -q -b main . && for i in $(seq 1 30); do echo "line $i" >"src/pkg/f$i.txt"; done &&
	printf 'print("hi")\n' >src/main.py && $G add -A && $G commit -q -m first &&
	echo more >>src/main.py && $G commit -q -am second) || fail "make the host repository"
$G clone -q --bare "$R" "$W/upstream.git" || fail "make the bare repository"
# a wheel, built by hand (a zip with its dist-info), so no build tool or network is needed
python3 - "$W" <<'P'
import base64, hashlib, sys, zipfile
out = sys.argv[1] + "/mlhello-1.0-py3-none-any.whl"
files = {"mlhello/__init__.py": b'def hello():\n    return "hello from the wheel"\n',
         "mlhello-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: mlhello\nVersion: 1.0\n",
         "mlhello-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: vfs_git\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
rec = "".join("%s,sha256=%s,%d\n" % (n, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d)) for n, d in files.items())
files["mlhello-1.0.dist-info/RECORD"] = (rec + "mlhello-1.0.dist-info/RECORD,,\n").encode()
with zipfile.ZipFile(out, "w") as z:
    for n, d in files.items():
        z.writestr(n, d)
P
# npm-style: 3000 small files in deep directories, as a tarball
mkdir -p "$T_TMP/nm"
(cd "$T_TMP/nm" && for p in $(seq 1 60); do d=node_modules/pkg$p/lib/sub; mkdir -p $d;
	for f in $(seq 1 50); do echo "module.exports = $p*$f;" >$d/m$f.js; done; done)
tar -C "$T_TMP/nm" -czf "$W/nm.tgz" node_modules
chown -R "$ML_USER:$ML_USER" "$W"

cat >"$W/run.sh" <<'S'
set -u
G="git -c user.email=guest@example.invalid -c user.name=guest"
cd /workspace
echo "clone=$($G clone -q --no-local /workspace/upstream.git repo 2>&1; echo $?)"
cd repo
echo "status=$(git status --porcelain | wc -l)"
echo "log=$(git log --format=%s | tr '\n' ,)"
echo "from the guest" > src/guest.txt
echo "x" >> src/pkg/f1.txt
$G add -A && $G commit -q -m "guest commit" && echo "commit=ok"
$G checkout -q -b test-branch && echo "head=$(cat .git/HEAD)"
echo "clean=$(git status --porcelain | wc -l)"
git fsck --no-progress 2>&1 | head -3; echo "fsck=$?"
cd /workspace
python3 -m venv venv && echo "venv=ok"
venv/bin/pip install -q --no-index /workspace/mlhello-1.0-py3-none-any.whl 2>&1 | tail -2
echo "wheel=$(venv/bin/python -c 'import mlhello; print(mlhello.hello())')"
mkdir -p untar && tar -C untar -xzf nm.tgz && echo "untar=$(find untar -type f | wc -l)"
echo "sum=$(cat untar/node_modules/pkg60/lib/sub/m50.js)"
S
chown "$ML_USER:$ML_USER" "$W/run.sh"
ml run --image $IMG --timeout 900 --memory 1024 --no-network --workspace /workspace -v "$W:/workspace:host_fs" \
	-- bash /workspace/run.sh >"$T_TMP/out" 2>"$T_TMP/err"; rc=$?
out=$(cat "$T_TMP/out")
echo "$out" | sed 's/^/# /'
check_eq "the guest script exits 0" 0 "$rc"
check_contains "git clone into the workspace" "clone=0" "$out"
check_contains "git status of a fresh clone is clean" "status=0" "$out"
check_contains "git log shows the host's history" "log=second,first," "$out"
check_contains "git commit in the workspace" "commit=ok" "$out"
check_contains "git checkout -b rewrites HEAD (HEAD.lock renamed over HEAD)" "head=ref: refs/heads/test-branch" "$out"
check_contains "git status after the commit is clean" "clean=0" "$out"
check_contains "git fsck finds nothing wrong" "fsck=0" "$out"
check_contains "python3 -m venv in the workspace" "venv=ok" "$out"
check_contains "pip install of a local wheel, then import" "wheel=hello from the wheel" "$out"
check_contains "tar unpacks 3000 small files" "untar=3000" "$out"
check_contains "an unpacked file's content" "sum=module.exports = 60*50;" "$out"
# the host's git reads what the guest wrote
check_eq "host: the guest's commit is on test-branch" "guest commit" "$($G -C "$W/repo" log -1 --format=%s test-branch 2>&1)"
check_eq "host: git status of the guest's clone is clean" "" "$($G -C "$W/repo" status --porcelain 2>&1)"
check_eq "host: git fsck of the guest's clone" "" "$($G -C "$W/repo" fsck --no-progress 2>&1 | grep -v '^Checking' | head -3)"
check_no_qemu_left "no VM left"
done_testing
