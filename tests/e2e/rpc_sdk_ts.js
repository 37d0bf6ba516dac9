// rpc_sdk_ts: `matchlock rpc` driven through the real, unmodified TypeScript SDK (its built
// `dist`, found at $ML_TS_SDK), as its users call it: builder options, exec / execStream /
// execPipe / execInteractive (the PTY the Python SDK lacks), files, cancellation by timeoutMs
// and AbortSignal, logs, port forwards, close, remove, and the RPCError codes. Runs as the
// unprivileged test user; started by rpc_sdk_ts.sh.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

const sdk = require(path.join(process.env.ML_TS_SDK, "dist"));
const { Client, createSandbox, RPCError, MatchlockError } = sdk;

const HOME = process.env.HOME;
const BIN = process.env.ML_SDK_BIN;
const IMG = process.env.ML_IMAGE || "matchlock/default:latest";
const VMS = path.join(HOME, ".matchlock", "vms");
const NAME = "rpc_sdk_ts";
let passes = 0;
let fails = 0;

const show = (v) => {
  const s = typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString() : JSON.stringify(v);
  return (s === undefined ? String(v) : s).slice(0, 600);
};
function ok(desc, cond, seen) {
  if (cond) {
    passes++;
    console.log(`ok - ${NAME}: ${desc}`);
  } else {
    fails++;
    console.log(`not ok - ${NAME}: ${desc}${seen !== undefined ? ` (saw ${show(seen)})` : ""}`);
  }
  return cond;
}
function eq(desc, want, got) {
  const same = JSON.stringify(want) === JSON.stringify(got);
  return ok(same ? desc : `${desc} (wanted ${show(want)})`, same, got);
}
async function rpcError(desc, fn, code, message, contains) {
  const want = `[${code}] ${message !== undefined ? message : `...${contains || ""}...`}`;
  try {
    await fn();
  } catch (e) {
    if (e instanceof RPCError) {
      const good = e.code === code && (message === undefined || e.rpcMessage === message) &&
        (contains === undefined || e.rpcMessage.includes(contains));
      return ok(good ? `${desc}: RPCError ${want}` : `${desc} (wanted RPCError ${want})`, good,
        `RPCError [${e.code}] ${e.rpcMessage}`);
    }
    return ok(`${desc} (wanted RPCError ${want})`, false, `${e && e.name}: ${e && e.message}`);
  }
  return ok(`${desc} (wanted RPCError ${want})`, false, "no error");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const vmDirs = () => (fs.existsSync(VMS) ? fs.readdirSync(VMS).sort() : []);
const record = (vm) => JSON.parse(fs.readFileSync(path.join(VMS, vm, "vm.json"), "utf8"));
function qemus() {
  const out = execFileSync("ps", ["-u", String(process.getuid()), "-o", "args="], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes("qemu-system") && l.includes(`${HOME}/`));
}
const newClient = () => new Client({ binaryPath: BIN });
async function out(c, cmd, opts) {
  return (await c.exec(cmd, opts)).stdout;
}
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}
// one TCP round trip to 127.0.0.1:port: send, half-close, read to EOF
function tcpEcho(port, payload, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, "127.0.0.1", () => s.end(payload));
    const t = setTimeout(() => {
      s.destroy();
      resolve(Buffer.from("timeout"));
    }, timeoutMs);
    s.on("data", (d) => chunks.push(d));
    s.on("error", (e) => {
      clearTimeout(t);
      resolve(Buffer.from(`error: ${e.code}`));
    });
    s.on("end", () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    });
  });
}
async function tcpEchoRetry(port, payload) {
  for (let i = 0; i < 30; i++) {
    const got = await tcpEcho(port, payload);
    if (!got.toString().startsWith("error:")) return got;
    await sleep(300);
  }
  return Buffer.from("never connected");
}

// ------------------------------------------------------------- failures, nothing left
async function failures() {
  const c = newClient();
  await rpcError("exec before create", () => c.exec("true"), -32000, "VM not created");
  await rpcError("create: vfs workspace without mounts", () => c.launch(createSandbox(IMG).withWorkspace("/workspace")),
    -32602, "invalid configuration: vfs.workspace requires at least one vfs.mounts entry");
  await rpcError("create: a workspace with a space",
    () => c.launch(createSandbox(IMG).withWorkspace("/work space").mountMemory("/work space")),
    -32602, "invalid configuration: vfs.workspace: invalid guest mount path \"/work space\": must be absolute and " +
    "contain only alphanumeric, '/', '_', '.', '-'");
  await rpcError("create: an image that cannot be pulled", () => c.launch(createSandbox("localhost:1/nosuch/ts:1")),
    -32000, undefined, "nosuch/ts");
  await rpcError("launch: an entrypoint exiting 3",
    () => c.launch(createSandbox(IMG).withEntrypoint("sh", "-c").withImageConfig({ cmd: ["exit 3"] })),
    -32000, "start image entrypoint: exit code 3");
  eq("failed creates leave no VM state", [], vmDirs());
  await c.close();
}

// ------------------------------------------------------------- the VM
async function theVM() {
  const p1 = await freePort();
  const p2 = await freePort();
  const sb = createSandbox(IMG).withCPUs(1).withMemory(256).withDiskSize(512).withTimeout(60)
    .withEnv("T1", "one").withEnvMap({ T2: "two words" })
    .addHost("db.internal", "10.1.2.3").withHostname("sdk-ts")
    .withEntrypoint("sh", "-c").withImageConfig({ cmd: ["echo ts-ep-marker; exec nc -ll -p 8080 -e /bin/cat"] })
    .withPortForward(p1, 8080);
  const c = newClient();
  let vm;
  try {
    vm = await c.launch(sb);
  } catch (e) {
    ok("launch", false, `${e.name}: ${e.message}`);
    await c.close();
    return;
  }
  ok("launch returns vm-xxxxxxxx", /^vm-[0-9a-f]{8}$/.test(vm), vm);
  eq("client.vmId", vm, c.vmId);
  const res = record(vm).config.resources;
  eq("record: resources as sent", [1, 256, 512, 60], [res.cpus, res.memory_mb, res.disk_size_mb, res.timeout_seconds]);
  const mem = parseInt((await out(c, "grep MemTotal /proc/meminfo")).replace(/\D/g, ""), 10);
  ok(`withMemory(256): MemTotal ${mem} kB`, mem > 150000 && mem < 256 * 1024, mem);
  const disk = parseInt((await out(c, "df -m / | tail -1")).trim().split(/\s+/)[1], 10);
  ok(`withDiskSize(512): ${disk} MB root`, disk > 400 && disk <= 512, disk);
  eq("withEnv / withEnvMap", "one|two words\n", await out(c, 'echo "$T1|$T2"'));
  eq("withHostname", "sdk-ts\n", await out(c, "hostname"));
  ok("addHost: /etc/hosts line", (await out(c, "cat /etc/hosts")).includes("10.1.2.3 db.internal"), await out(c, "cat /etc/hosts"));
  ok("launch ran the entrypoint (its output is in log())", (await c.log()).includes("ts-ep-marker"));

  eq("withPortForward: TCP round trip to the guest's nc", "via builder\n", (await tcpEchoRetry(p1, "via builder\n")).toString());
  const b = await c.portForward(`${p2}:8080`);
  eq("portForward: bindings", [{ address: "127.0.0.1", localPort: p2, remotePort: 8080 }], b);
  const blob = crypto.randomBytes(200 << 10);
  ok("portForward: 200 KiB round trip intact", (await tcpEchoRetry(p2, blob)).equals(blob));

  await execs(c);
  await tty(c);
  await files(c);
  await cancels(c);
  await logs(c);

  await c.close();
  eq("close: record stopped, pid 0", ["stopped", 0], [record(vm).status, record(vm).pid]);
  eq("close: no QEMU left", [], qemus());
  try {
    await c.remove();
    ok("remove(): `matchlock rm` deletes the VM's state", !fs.existsSync(path.join(VMS, vm)), vmDirs());
  } catch (e) {
    ok("remove(): `matchlock rm` deletes the VM's state", false, e.message);
  }
}

async function execs(c) {
  const r = await c.exec("echo out; echo err >&2; exit 9");
  eq("exec: exitCode, stdout, stderr", [9, "out\n", "err\n"], [r.exitCode, r.stdout, r.stderr]);
  eq("exec: workingDir", "/etc\n", await out(c, "pwd", { workingDir: "/etc" }));
  eq("execWithDir", "/tmp\n", (await c.execWithDir("pwd", "/tmp")).stdout);
  await rpcError("exec: a missing workingDir", () => c.exec("true", { workingDir: "/nope" }), -32001);

  await c.exec("head -c 2000000 /dev/urandom > /tmp/rand");
  const want = (await c.readFile("/tmp/rand"));
  const so = [];
  const se = [];
  const rs = await c.execStream("cat /tmp/rand; echo e1 >&2; exit 2", {
    stdout: (b) => so.push(b), stderr: (b) => se.push(b),
  });
  eq("execStream: exitCode", 2, rs.exitCode);
  ok("execStream: 2 MB of binary stdout, byte for byte", Buffer.concat(so).equals(want), Buffer.concat(so).length);
  eq("execStream: stderr", "e1\n", Buffer.concat(se).toString());

  const input = crypto.randomBytes(1 << 20);
  const po = [];
  const pe = [];
  async function* chunks() {
    for (let i = 0; i < input.length; i += 50000) {
      yield input.subarray(i, i + 50000);
    }
  }
  const rp = await c.execPipe("cat; echo pe >&2; exit 6", { stdin: chunks(), stdout: (b) => po.push(b), stderr: (b) => pe.push(b) });
  eq("execPipe: exitCode", 6, rp.exitCode);
  ok("execPipe: 1 MiB of binary stdin comes back through cat", Buffer.concat(po).equals(input), Buffer.concat(po).length);
  eq("execPipe: stderr", "pe\n", Buffer.concat(pe).toString());
  const po2 = [];
  const rp2 = await c.execPipe("wc -c", { stdin: ["abc", Buffer.from("de")], stdout: (b) => po2.push(b), workingDir: "/" });
  eq("execPipe: an iterable of strings and Buffers", [0, "5"], [rp2.exitCode, Buffer.concat(po2).toString().trim()]);
}

async function tty(c) {
  // a real PTY: initial size, a resize (only after the first size was printed), input echoed
  const outChunks = [];
  let sawFirst;
  const firstSize = new Promise((r) => { sawFirst = r; });
  let resized;
  const resizeSent = new Promise((r) => { resized = r; });
  async function* resize() {
    await firstSize;
    yield [40, 120];
    resized();
  }
  async function* stdin() {
    await sleep(200);
    yield "one\n";
    await resizeSent;
    await sleep(500);
    yield "two\n";
  }
  const r = await c.execInteractive("stty size; tty; read a; read b; stty size; echo got-$a-$b; exit 5", {
    rows: 30, cols: 100, stdin: stdin(), resize: resize(),
    stdout: (b) => {
      outChunks.push(b);
      if (Buffer.concat(outChunks).toString().includes("30 100")) sawFirst();
    },
    timeoutMs: 60000,
  });
  const o = Buffer.concat(outChunks).toString();
  eq("execInteractive: exitCode", 5, r.exitCode);
  ok("execInteractive: rows/cols", o.includes("30 100"), o);
  ok("execInteractive: a real terminal", o.includes("/dev/pts/"), o);
  ok("execInteractive: resize reaches the PTY", o.includes("40 120"), o);
  ok("execInteractive: stdin read (and echoed by the terminal)", o.includes("got-one-two") && o.includes("one\r\n"), o);
}

async function files(c) {
  await c.writeFile("/tmp/ts/sub/a.txt", "hello ts");
  eq("writeFile/readFile", "hello ts", (await c.readFile("/tmp/ts/sub/a.txt")).toString());
  eq("writeFile: mode 0644", "644\n", await out(c, "stat -c %a /tmp/ts/sub/a.txt"));
  const script = "#!/bin/sh\necho x-ran\n";
  await c.writeFileMode("/tmp/ts/x.sh", script, 0o700);
  eq("writeFileMode 0700: runs", ["700\n", "x-ran\n"], [await out(c, "stat -c %a /tmp/ts/x.sh"), await out(c, "/tmp/ts/x.sh")]);
  const blob = crypto.randomBytes(2 << 20);
  await c.writeFile("/tmp/ts/blob", blob);
  ok("writeFile/readFile: 2 MiB binary", (await c.readFile("/tmp/ts/blob")).equals(blob));
  const l = await c.listFiles("/tmp/ts");
  eq("listFiles", [["blob", 2 << 20, 0o644, false], ["sub", l[1] && l[1].size, 0x80000000 + 0o755, true],
    ["x.sh", script.length, 0o700, false]], l.map((f) => [f.name, f.size, f.mode, f.isDir]));
  await rpcError("readFile: missing", () => c.readFile("/nope"), -32002, "guest file operation: open /nope: no such file or directory");
  await rpcError("listFiles: missing", () => c.listFiles("/nope"), -32002, undefined, "no such file or directory");
}

async function cancels(c) {
  let t0 = Date.now();
  try {
    await c.exec("sleep 300 & sleep 301", { timeoutMs: 1500 });
    ok("exec timeoutMs rejects", false, "resolved");
  } catch (e) {
    ok(`exec timeoutMs: rejected after ${Date.now() - t0} ms`, e instanceof MatchlockError && /timed out/.test(e.message) &&
      Date.now() - t0 < 3000, e.message);
  }
  let left = "?";
  t0 = Date.now();
  while (Date.now() - t0 < 8000) {
    left = (await out(c, "ps -o comm | grep -c '^sleep' || true")).trim();
    if (left === "0") break;
    await sleep(200);
  }
  eq(`the cancelled command's process group is gone (${Date.now() - t0} ms after)`, "0", left);

  const ac = new AbortController();
  const got = [];
  t0 = Date.now();
  setTimeout(() => ac.abort(), 1500);
  try {
    await c.execStream("echo begun; sleep 300", { stdout: (b) => got.push(b), signal: ac.signal });
    ok("execStream AbortSignal rejects", false, "resolved");
  } catch (e) {
    ok("execStream AbortSignal: rejected, output so far delivered", Buffer.concat(got).toString() === "begun\n" &&
      Date.now() - t0 < 3000, `${e.message} / ${Buffer.concat(got)}`);
  }
  eq("the VM still serves after cancels", "alive\n", await out(c, "echo alive"));
}

async function logs(c) {
  const ac = new AbortController();
  const got = [];
  const p = c.logStream({ stdout: (b) => got.push(b), signal: ac.signal }).then(() => "resolved", (e) => e);
  await sleep(800);
  await c.exec("echo ts-log-marker > /dev/console");
  for (let i = 0; i < 50 && !Buffer.concat(got).toString().includes("ts-log-marker"); i++) await sleep(100);
  ac.abort();
  const end = await p;
  ok("logStream: ends by AbortSignal", end instanceof Error, end);
  const s = Buffer.concat(got).toString();
  ok("logStream: the log so far, then what is appended", s.includes("ts-ep-marker") && s.includes("ts-log-marker"), s.slice(-300));
}

async function noNetwork() {
  const c = newClient();
  try {
    await c.launch(createSandbox(IMG).withNoNetwork().addHost("db.internal", "10.1.2.3").withHostname("ts-nonet")
      .withDNSServers("192.0.2.53"));
  } catch (e) {
    ok("launch withNoNetwork", false, `${e.name}: ${e.message}`);
    await c.close();
    return;
  }
  eq("withNoNetwork: only lo", "lo\n", await out(c, "ls /sys/class/net"));
  ok("withNoNetwork + addHost: /etc/hosts line", (await out(c, "cat /etc/hosts")).includes("10.1.2.3 db.internal"));
  eq("withNoNetwork + hostname, dns servers", "ts-nonet\nnameserver 192.0.2.53\n", await out(c, "hostname; cat /etc/resolv.conf"));
  await c.close();
}

async function main() {
  await failures();
  await theVM();
  await noNetwork();
  eq("no QEMU outlives the clients", [], qemus());
  console.log(`# ${NAME}: ${passes} passed, ${fails} failed`);
  process.exit(fails === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`not ok - ${NAME}: the script ran to its end (${e && e.stack})`);
  process.exit(1);
});
