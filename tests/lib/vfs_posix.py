"""tests/lib/vfs_posix.py DIR - run inside a guest, as root, on a workspace directory: the POSIX
behaviours real tools rely on, one line per check ("OK name" or "FAIL name: what was seen").
The host side (tests/e2e/vfs_posix.sh) turns the lines into test results."""
import ctypes, errno, mmap, os, stat, sys, threading, time

W = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)


def check(name, cond, seen=""):
    print(("OK " if cond else "FAIL ") + name + ("" if cond else ": " + str(seen)), flush=True)


def raises(fn, err):
    try:
        fn()
    except OSError as e:
        return e.errno == err
    return False


def put(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    os.write(fd, data)
    os.close(fd)


def get(path):
    with open(path, "rb") as f:
        return f.read()


os.chdir(W)
# create, unlink, mkdir, rmdir
put("a", b"A")
check("create and read back", get("a") == b"A")
os.mkdir("d")
put("d/inner", b"x")
check("rmdir of a non-empty directory fails ENOTEMPTY", raises(lambda: os.rmdir("d"), errno.ENOTEMPTY))
os.unlink("d/inner")
os.rmdir("d")
check("unlink and rmdir", not os.path.exists("d"))
check("unlink of a missing file fails ENOENT", raises(lambda: os.unlink("nope"), errno.ENOENT))
# O_EXCL, O_TRUNC, O_APPEND
check("O_EXCL on an existing file fails EEXIST", raises(lambda: os.open("a", os.O_CREAT | os.O_EXCL | os.O_WRONLY), errno.EEXIST))
put("t", b"long content")
put("t", b"s")
check("O_TRUNC", get("t") == b"s")
for part in (b"one ", b"two ", b"three"):
    put("ap", part, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
check("O_APPEND appends", get("ap") == b"one two three", get("ap"))
fd1 = os.open("ap2", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
fd2 = os.open("ap2", os.O_WRONLY | os.O_APPEND)
os.write(fd1, b"1")
os.write(fd2, b"2")
os.write(fd1, b"3")
os.close(fd1)
os.close(fd2)
check("O_APPEND through two descriptors", get("ap2") == b"123", get("ap2"))
# rename over an existing file, of directories, RENAME_NOREPLACE
put("old", b"old")
put("new.tmp", b"new")
os.rename("new.tmp", "old")
check("rename over an existing file", get("old") == b"new" and not os.path.exists("new.tmp"))
os.makedirs("src/sub/deep")
put("src/sub/deep/f", b"nested")
os.rename("src", "dst")
check("rename of a directory keeps its tree", get("dst/sub/deep/f") == b"nested")
os.makedirs("empty")
os.rename("empty", "dst/sub/moved")
check("rename of a directory into another", os.path.isdir("dst/sub/moved"))
put("x1", b"1")
put("x2", b"2")
r = libc.renameat2(-100, b"x1", -100, b"x2", 1)  # AT_FDCWD, RENAME_NOREPLACE
check("RENAME_NOREPLACE refuses an existing target", r == -1 and ctypes.get_errno() == errno.EEXIST, (r, ctypes.get_errno()))
r = libc.renameat2(-100, b"x1", -100, b"x3", 1)
check("RENAME_NOREPLACE renames to a free name", r == 0 and get("x3") == b"1")
check("rename a directory below itself fails EINVAL", raises(lambda: os.rename("dst", "dst/sub/inside"), errno.EINVAL))
# symlinks and hard links
os.symlink("dst/sub/deep/f", "ln")
check("symlink and readlink", os.readlink("ln") == "dst/sub/deep/f" and get("ln") == b"nested")
os.symlink("/etc/hostname", "abs")
check("an absolute symlink resolves in the guest", get("abs") == get("/etc/hostname"))
os.link("old", "hard")
st1, st2 = os.stat("old"), os.stat("hard")
check("hard link: same inode, two links", st1.st_ino == st2.st_ino and st1.st_nlink == 2, (st1.st_ino, st2.st_ino, st1.st_nlink))
put("hard", b"through the link")
check("hard link: one file", get("old") == b"through the link")
# chmod, chown, truncate, times
os.chmod("a", 0o600)
check("chmod", stat.S_IMODE(os.stat("a").st_mode) == 0o600)
os.chmod("a", 0o4755)
check("chmod with set-uid shows", stat.S_IMODE(os.stat("a").st_mode) == 0o4755, oct(os.stat("a").st_mode))
os.chown("a", 1234, 5678)
st = os.stat("a")
check("chown as the guest sees it", (st.st_uid, st.st_gid) == (1234, 5678), (st.st_uid, st.st_gid))
os.truncate("t", 100)
check("truncate grows", os.stat("t").st_size == 100 and get("t")[:1] == b"s" and get("t")[1:] == b"\0" * 99)
os.truncate("t", 0)
check("truncate shrinks", os.stat("t").st_size == 0)
os.utime("a", (1000000000, 1500000000))
check("utime", int(os.stat("a").st_mtime) == 1500000000)
# fsync, fdatasync
fd = os.open("synced", os.O_WRONLY | os.O_CREAT)
os.write(fd, b"durable")
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
check("fsync", get("synced") == b"durable")
# an open file outlives its name
fd = os.open("doomed", os.O_RDWR | os.O_CREAT)
os.write(fd, b"still here")
os.unlink("doomed")
os.lseek(fd, 0, 0)
check("an unlinked open file stays readable", os.read(fd, 100) == b"still here" and os.fstat(fd).st_size == 10)
os.close(fd)
# shared writable mmap
put("mm", b"\0" * 8192)
fd = os.open("mm", os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[4096:4101] = b"mmap!"
m.flush()
m.close()
os.close(fd)
check("shared writable mmap reaches the file", get("mm")[4096:4101] == b"mmap!")
# xattrs
os.setxattr("a", "user.colour", b"blue")
check("xattr set and get", os.getxattr("a", "user.colour") == b"blue")
check("xattr list hides nothing of the guest's and shows nothing of ours", os.listxattr("a") == ["user.colour"], os.listxattr("a"))
os.removexattr("a", "user.colour")
check("xattr remove", raises(lambda: os.getxattr("a", "user.colour"), errno.ENODATA))
# beyond 4 GiB
fd = os.open("sparse", os.O_RDWR | os.O_CREAT)
os.pwrite(fd, b"far away", 5 << 30)
check("a write past 4 GiB", os.fstat(fd).st_size == (5 << 30) + 8 and os.pread(fd, 8, 5 << 30) == b"far away")
check("SEEK_DATA finds the data", os.lseek(fd, 0, os.SEEK_DATA) >= (4 << 30))
os.close(fd)
os.unlink("sparse")
# a directory of 100k entries (made on the host, listed here)
names = os.listdir(W + "/many")
check("a directory of 100000 entries lists them all", len(names) == 100000 and len(set(names)) == 100000, len(names))
check("an entry of the big directory stats", os.stat(W + "/many/f99999").st_size == 0)
# many small files, in a tree
for i in range(40):
    os.makedirs("tree/d%02d" % i)
    for j in range(50):
        put("tree/d%02d/f%02d" % (i, j), b"%d-%d" % (i, j))
count = sum(len(f) for _, _, f in os.walk("tree"))
check("2000 small files in a tree", count == 2000 and get("tree/d39/f49") == b"39-49", count)
# rename over a file while readers read it: every read sees one whole version
put("target", b"A" * 1000)
stop = False
bad = []
def reader():
    n = 0
    while not stop:
        try:
            d = get("target")
        except OSError as e:
            bad.append("error %s" % e)
            continue
        n += 1
        if d not in (b"A" * 1000, b"B" * 1000):
            bad.append("torn read of %d bytes" % len(d))
    bad.append(n)
t = threading.Thread(target=reader)
t.start()
for i in range(300):
    put("target.tmp", (b"A" if i % 2 else b"B") * 1000)
    os.rename("target.tmp", "target")
stop = True
t.join()
reads = bad.pop()
check("rename-over is atomic for readers (%d reads)" % reads, not bad and reads > 0, bad[:3])
print("DONE", flush=True)
