#!/usr/bin/env python3
"""tests/lib/mkimage.py - builds test images (OCI image layout tars) on top of the embedded
default image, for the end-to-end tests. Python's tarfile writes the layer headers exactly as
given (uid, gid, mode, type), so the tests know what the guest must show.

  mkimage.py SCENARIO BASE.tar OUT.tar [EXPECT]

Scenarios: fidelity (many entry types; EXPECT gets 'path uid gid mode type [target]' lines),
whiteout, bigdir (20,000 files and 66,000 subdirectories in two directories, a third
whited out by a second layer; EXPECT gets the names left), traversal, abs-hardlink, hardlink-outside, truncated, config (Entrypoint/Cmd/Env/
User/WorkingDir set), noworkdir (no WorkingDir); for the registry tests: multilayer (whiteouts, hard links, setuid over
three layers: gzip, uncompressed, zstd), platforms (an index: linux/arm64 first, linux/arm/v7,
linux/amd64; each adds /platform naming itself), noamd64 (an index without linux/amd64), big
(a 100 MB uncompressed layer of random bytes), bomb (a gzip layer of 1 MiB expanding to 16 GiB:
concatenated gzip members of zeros)."""
import gzip, hashlib, io, json, os, shutil, subprocess, sys, tarfile, time

def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()

def read_base(path):
    with tarfile.open(path) as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    index = json.loads(files["index.json"])
    mdig = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(files["blobs/sha256/" + mdig])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    layers = [(l, files["blobs/sha256/" + l["digest"].split(":")[1]]) for l in manifest["layers"]]
    return config, layers

def add(tar, name, kind=tarfile.REGTYPE, data=b"", uid=0, gid=0, mode=0o644, link="", dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type, ti.uid, ti.gid, ti.mode, ti.linkname = kind, uid, gid, mode, link
    ti.mtime = 1700000000
    ti.devmajor, ti.devminor = dev
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        tar.addfile(ti)

def layer_bytes(build, fmt=tarfile.GNU_FORMAT):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        build(tar)
    return raw.getvalue()

def fidelity(tar, expect):
    entries = [
        ("fid", tarfile.DIRTYPE, b"", 0, 0, 0o755, ""),
        ("fid/plain", tarfile.REGTYPE, b"hello\n", 0, 0, 0o644, ""),
        ("fid/owned", tarfile.REGTYPE, b"x" * 5000, 1000, 1001, 0o600, ""),
        ("fid/setuid", tarfile.REGTYPE, b"#!/bin/sh\n", 0, 0, 0o4755, ""),
        ("fid/setgid", tarfile.REGTYPE, b"data", 0, 50, 0o2750, ""),
        ("fid/sticky", tarfile.DIRTYPE, b"", 0, 0, 0o1777, ""),
        ("fid/nobody-dir", tarfile.DIRTYPE, b"", 65534, 65534, 0o700, ""),
        ("fid/link-rel", tarfile.SYMTYPE, b"", 0, 0, 0o777, "plain"),
        ("fid/link-abs", tarfile.SYMTYPE, b"", 0, 0, 0o777, "/etc/passwd"),
        ("fid/link-long", tarfile.SYMTYPE, b"", 0, 0, 0o777, "/" + "d" * 120 + "/target"),
        ("fid/hard", tarfile.LNKTYPE, b"", 0, 0, 0o644, "fid/plain"),
        ("fid/fifo", tarfile.FIFOTYPE, b"", 0, 0, 0o644, ""),
        ("fid/chardev", tarfile.CHRTYPE, b"", 0, 0, 0o666, ""),
        ("fid/blockdev", tarfile.BLKTYPE, b"", 0, 6, 0o660, ""),
        ("fid/big", tarfile.REGTYPE, bytes(range(256)) * 8192, 0, 0, 0o644, ""),
    ]
    names = {"CHR": "character special file", "BLK": "block special file"}
    for name, kind, data, uid, gid, mode, link in entries:
        dev = (1, 3) if kind == tarfile.CHRTYPE else (7, 0) if kind == tarfile.BLKTYPE else (0, 0)
        add(tar, name, kind, data, uid, gid, mode, link, dev)
        if kind == tarfile.LNKTYPE:
            continue
        t = {tarfile.DIRTYPE: "directory", tarfile.REGTYPE: "regular file", tarfile.SYMTYPE: "symbolic link",
             tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: names["CHR"], tarfile.BLKTYPE: names["BLK"]}[kind]
        if kind == tarfile.REGTYPE and not data:
            t = "regular empty file"
        expect.append(f"/{name} {uid} {gid} {mode:o} {t}" + (f" -> {link}" if link else ""))

def zstd(data):
    if not shutil.which("zstd"):
        return None
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout

def bomb_layer(size):
    """A tar of one file of `size` zero bytes, gzip'd as many members of 1 MiB of zeros each."""
    ti = tarfile.TarInfo("bomb")
    ti.size, ti.mode, ti.mtime = size, 0o644, 1700000000
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    parts = [gzip.compress(ti.tobuf(tarfile.GNU_FORMAT), mtime=0)] + [zeros] * (size >> 20)
    parts.append(gzip.compress(bytes(1024), mtime=0))
    return b"".join(parts)

def write_layout(out, blobs, index):
    with tarfile.open(out, "w") as tar:
        def put(name, data):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = int(time.time())
            tar.addfile(ti, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        put("index.json", index)
        for d, data in blobs.items():
            put("blobs/sha256/" + d.split(":")[1], data)

def write_index(out, config, layers, plats):
    """One manifest per platform (base layers + a layer whose /platform names it), in an OCI
    index that is itself the image tagged "latest" (so `skopeo copy --all` pushes all of it)."""
    blobs, entries = {}, []
    for arch, variant in plats:
        name = "linux/" + arch + ("/" + variant if variant else "")
        marker = layer_bytes(lambda t: add(t, "platform", data=(name + "\n").encode()))
        comp = gzip.compress(marker, mtime=0)
        blobs[blob(comp)] = comp
        cfg = json.loads(json.dumps(config))
        cfg["architecture"] = arch
        if variant:
            cfg["variant"] = variant
        cfg["rootfs"]["diff_ids"].append(blob(marker))
        descs = []
        for desc, data in layers:
            blobs[desc["digest"]] = data
            descs.append(desc)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(comp), "size": len(comp)})
        c = json.dumps(cfg).encode()
        blobs[blob(c)] = c
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(c), "size": len(c)},
                        "layers": descs}).encode()
        blobs[blob(m)] = m
        p = {"architecture": arch, "os": "linux"}
        if variant:
            p["variant"] = variant
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(m), "size": len(m), "platform": p})
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}).encode()
    blobs[blob(inner)] = inner
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": blob(inner), "size": len(inner), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}).encode()
    write_layout(out, blobs, index)

def build(scenario, base, out, expect_path):
    config, layers = read_base(base)
    expect = []
    extra = []
    if scenario == "fidelity":
        extra.append(layer_bytes(lambda t: fidelity(t, expect)))
    elif scenario == "whiteout":
        def l1(t):
            add(t, "wo", tarfile.DIRTYPE, mode=0o755)
            add(t, "wo/gone", data=b"old")
            add(t, "wo/kept", data=b"kept")
            add(t, "opq", tarfile.DIRTYPE, mode=0o755)
            add(t, "opq/old", data=b"old")
        def l2(t):
            add(t, "wo/.wh.gone")
            add(t, "opq", tarfile.DIRTYPE, mode=0o755)
            add(t, "opq/.wh..wh..opq")
            add(t, "opq/new", data=b"new")
            add(t, "bin/.wh.vi")
        extra += [layer_bytes(l1), layer_bytes(l2)]
    elif scenario == "traversal":
        extra.append(layer_bytes(lambda t: add(t, "../../escape", data=b"evil")))
    elif scenario == "hardlink-outside":
        extra.append(layer_bytes(lambda t: add(t, "hl", tarfile.LNKTYPE, link="../../etc/shadow")))
    elif scenario == "truncated":
        data = gzip.compress(layer_bytes(lambda t: add(t, "big", data=b"z" * 200000)), mtime=0)
        extra.append(("trunc", data[: len(data) // 2]))
    elif scenario == "config":
        extra.append(layer_bytes(lambda t: (add(t, "work", tarfile.DIRTYPE, uid=65534, gid=65534, mode=0o755),
                                            add(t, "entry.sh", data=b"#!/bin/sh\necho entry:\"$@\"\n", mode=0o755))))
        config["config"].update({"Entrypoint": ["/entry.sh"], "Cmd": ["from-cmd"], "User": "nobody",
                                 "WorkingDir": "/work", "Env": config["config"]["Env"] + ["IMG_VAR=from-image"]})
    elif scenario == "noworkdir":
        # like most public images: no WorkingDir, so a workspace becomes the working directory
        config["config"].pop("WorkingDir", None)
        extra.append(layer_bytes(lambda t: add(t, "noworkdir", data=b"1")))
    elif scenario == "multilayer":
        def l1(t):
            add(t, "ml", tarfile.DIRTYPE, mode=0o755)
            add(t, "ml/orig", data=b"original\n")
            add(t, "ml/hard", tarfile.LNKTYPE, link="ml/orig")
            add(t, "ml/suid", data=b"#!/bin/sh\n", mode=0o4755)
            add(t, "ml/sgid", data=b"g", gid=50, mode=0o2755)
            add(t, "ml/gone", data=b"to be removed")
            add(t, "ml/opq", tarfile.DIRTYPE, mode=0o755)
            add(t, "ml/opq/old", data=b"old")
        def l2(t):
            add(t, "ml/.wh.gone")
            add(t, "ml/opq", tarfile.DIRTYPE, mode=0o755)
            add(t, "ml/opq/.wh..wh..opq")
            add(t, "ml/opq/new", data=b"new")
        def l3(t):
            add(t, "ml/late", data=b"zstd layer\n", uid=1000, gid=1000, mode=0o640)
        extra += [layer_bytes(l1), ("raw", layer_bytes(l2)), ("zstd", layer_bytes(l3))]
    elif scenario in ("platforms", "noamd64"):
        plats = [("arm64", None), ("arm", "v7")] + ([("amd64", None)] if scenario == "platforms" else [("s390x", None)])
        return write_index(out, config, layers, plats)
    elif scenario == "bigdir":
        # 20,000 files in one directory in three name shapes (short, bytes >= 0x80, 200 chars)
        # and 66,000 subdirectories in another; the second layer whites out a third of the
        # files and 1,000 subdirectories. EXPECT gets the names left in /bd.
        def bd_name(i):
            return "%0200d" % i if i % 10 == 9 else ("\u00e9t\u00e9-%05d" % i if i % 2 else "f-%05d" % i)
        def l1(t):
            add(t, "bd", tarfile.DIRTYPE, mode=0o755)
            for i in range(20000):
                add(t, "bd/" + bd_name(i), data=b"%d\n" % i)
            add(t, "many", tarfile.DIRTYPE, mode=0o755)
            for i in range(66000):
                add(t, "many/d%d" % i, tarfile.DIRTYPE, mode=0o755)
        def l2(t):
            for i in range(0, 20000, 3):
                add(t, "bd/.wh." + bd_name(i))
            for i in range(1000):
                add(t, "many/.wh.d%d" % (i * 7))
        extra += [("raw", layer_bytes(l1)), ("raw", layer_bytes(l2))]
        expect += [bd_name(i) for i in range(20000) if i % 3]
    elif scenario == "big":
        extra.append(("raw", layer_bytes(lambda t: add(t, "big.bin", data=os.urandom(100 << 20)))))
    elif scenario == "bomb":
        extra.append(("bomb", bomb_layer(16 << 30)))
    else:
        sys.exit("unknown scenario " + scenario)
    blobs, descs = {}, []
    for desc, data in layers:
        blobs[desc["digest"]] = data
        descs.append(desc)
    for x in extra:
        mt = "application/vnd.oci.image.layer.v1.tar+gzip"
        if isinstance(x, tuple) and x[0] == "raw":
            comp, diff, mt = x[1], blob(x[1]), "application/vnd.oci.image.layer.v1.tar"
        elif isinstance(x, tuple) and x[0] == "zstd":
            comp, diff = zstd(x[1]), blob(x[1])
            if comp is None:
                comp = gzip.compress(x[1], mtime=0)
            else:
                mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        elif isinstance(x, tuple):
            comp = x[1]
            diff = blob(b"")  # unknowable: the layer is broken on purpose
        else:
            comp = gzip.compress(x, mtime=0)
            diff = blob(x)
        d = blob(comp)
        blobs[d] = comp
        descs.append({"mediaType": mt, "digest": d, "size": len(comp)})
        config["rootfs"]["diff_ids"].append(diff)
    cfg = json.dumps(config).encode()
    blobs[blob(cfg)] = cfg
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
                           "layers": descs}).encode()
    blobs[blob(manifest)] = manifest
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": blob(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}).encode()
    write_layout(out, blobs, index)
    if expect_path:
        with open(expect_path, "w", encoding="utf-8") as f:
            f.write("\n".join(sorted(expect)) + "\n")

if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
