// A small lab of Linux network namespaces for multi-host tests: one namespace
// per "host", joined by a userspace Ethernet switch that delays every frame by
// the one-way latency between the two hosts' sites and can partition them.
//
// Why a userspace switch and not a bridge with `tc netem`: kernels built
// without sch_netem cannot delay packets (the VM this was written on offers
// only the htb, pfifo and bfifo qdiscs), and a switch that knows both ports
// gives any latency matrix, not only the sums of per-link delays a star allows. It is a
// short Python program (the standard library: tap devices need ioctl and
// setns, which Node lacks) holding one tap device in each namespace; nothing
// is ever created or changed outside the lab's own namespaces.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { createInterface } from 'node:readline';
import { BIN, readyLine, ROOT, stopProcess } from './arus.js';

const ip = (args: string[]) => spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });

function must(args: string[]) {
  const r = ip(args);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}

/**
 * Why namespaces cannot be made here (undefined when they can): tries the real
 * thing once (a namespace with a tap device in it) and checks the tools.
 */
export function netnsUnsupported(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  const probe = `arus-check-${process.pid}`;
  const add = ip(['netns', 'add', probe]);
  if (add.error) return `no \`ip\` command (Debian: apt-get install iproute2): ${add.error.message}`;
  if (add.status !== 0) return `\`ip netns add\` failed (needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN): ${add.stderr.trim()}`;
  try {
    const tap = ip(['-n', probe, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
    if (tap.status !== 0) return `cannot make a tap device in a namespace: ${tap.stderr.trim()}`;
  } finally {
    ip(['netns', 'del', probe]);
  }
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (the lab switch uses tap devices)';
  const py = spawnSync('python3', ['-c', 'import ctypes, fcntl, heapq, selectors, socket'], { encoding: 'utf8' });
  if (py.status !== 0) return `no python3 with its standard library (Debian: apt-get install python3): ${(py.stderr || py.error?.message || '').trim()}`;
  if (spawnSync('dig', ['-v']).status !== 0) return 'no dig (Debian: apt-get install dnsutils)';
  return undefined;
}

/** Deletes namespaces `<prefix><pid>-…` left by runs whose process is gone, and ends what still runs in them. */
export function removeStaleLabs(prefix: string) {
  for (const line of must(['netns', 'list']).split('\n')) {
    const name = line.split(' ')[0];
    const m = name.startsWith(prefix) ? /^(\d+)-/.exec(name.slice(prefix.length)) : null;
    if (!m || alive(Number(m[1]))) continue;
    killAllIn(name);
    ip(['netns', 'del', name]);
  }
}

function killAllIn(netns: string) {
  for (const pid of ip(['netns', 'pids', netns]).stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

function alive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// The switch. Frames from a port go where their destination MAC was last seen
// (else to every other port), each after delay[from][to] ms, in order.
// Commands, one JSON object a line on stdin, each answered with a line:
//   {"block": PORT, "addresses": [IPv4, …]}  drop IPv4 between PORT and those addresses, both ways
//   {"heal": PORT}                           lift PORT's blocks
//   {"stats": true}                          frames forwarded and dropped
// It exits when its stdin closes, so it never outlives the test.
const SWITCH = String.raw`
import ctypes, fcntl, heapq, json, os, selectors, socket, struct, sys, time
CLONE_NEWNET, TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x40000000, 0x400454CA, 0x0002, 0x1000
libc = ctypes.CDLL(None, use_errno=True)
def setns(fd, what):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), what)
cfg = json.loads(sys.argv[1])
home = os.open('/proc/self/ns/net', os.O_RDONLY)
taps = {}
for p in cfg['ports']:
    ns = os.open('/run/netns/' + p['netns'], os.O_RDONLY)
    setns(ns, p['netns'])
    os.close(ns)
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', p['dev'].encode(), IFF_TAP | IFF_NO_PI))
    taps[p['name']] = fd
setns(home, 'home')
delay = {a: {b: ms / 1000.0 for b, ms in row.items()} for a, row in cfg['delayMs'].items()}
blocks = {name: set() for name in taps}
where, queue, seq = {}, [], 0
stats = {'forwarded': 0, 'dropped': 0}
# select(2) takes microseconds; epoll rounds its timeout up to whole milliseconds.
sel = selectors.SelectSelector()
for name, fd in taps.items():
    sel.register(fd, selectors.EVENT_READ, name)
sel.register(0, selectors.EVENT_READ, None)
def allowed(src, dst, frame):
    if frame[12:14] != b'\x08\x00' or len(frame) < 34:
        return True
    return frame[30:34] not in blocks[src] and frame[26:30] not in blocks[dst]
def command(c):
    if 'block' in c:
        blocks[c['block']] = {socket.inet_aton(a) for a in c['addresses']}
    elif 'heal' in c:
        blocks[c['heal']] = set()
    return stats
def forward(src, frame):
    global seq
    if len(frame) < 14:
        return
    where[frame[6:12]] = src
    to = where.get(frame[0:6])
    outs = [n for n in taps if n != src] if to is None or frame[0] & 1 else ([to] if to != src else [])
    now = time.monotonic()
    for dst in outs:
        if not allowed(src, dst, frame):
            stats['dropped'] += 1
            continue
        seq += 1
        heapq.heappush(queue, (now + delay[src][dst], seq, dst, frame))
print('ready', flush=True)
pending = b''
while True:
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, dst, frame = heapq.heappop(queue)
        try:
            os.write(taps[dst], frame)
            stats['forwarded'] += 1
        except OSError:
            stats['dropped'] += 1
    timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
    for key, _ in sel.select(timeout):
        if key.data is None:
            data = os.read(0, 65536)
            if not data:
                sys.exit(0)
            pending += data
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                print(json.dumps(command(json.loads(line))), flush=True)
            continue
        while True:
            try:
                frame = os.read(key.fd, 65536)
            except BlockingIOError:
                break
            forward(key.data, frame)
`;

export type Host = { name: string; netns: string; addresses: string[] };
export type Lab = {
  hosts: Map<string, Host>;
  /** Drops IPv4 between `host` and `addresses`, both ways (packets vanish: peers see timeouts). */
  block(host: string, addresses: string[]): Promise<{ forwarded: number; dropped: number }>;
  heal(host: string): Promise<{ forwarded: number; dropped: number }>;
  destroy(): Promise<void>;
};

/**
 * Makes one namespace per host (`<prefix><pid>-<name>`), each with a tap
 * `eth0` carrying its addresses (the first is its own source address) in
 * `cidr`'s network and `lo` up, and starts the switch with `rttMs[a][b]` (the
 * round trip between two hosts, halved each way; symmetric, 0 if absent).
 */
export async function createLab(opts: { prefix: string; cidr: number; hosts: { name: string; addresses: string[] }[]; rttMs: Record<string, Record<string, number>> }): Promise<Lab> {
  const hosts = new Map<string, Host>();
  const made: string[] = [];
  let sw: ChildProcess | undefined;
  const destroy = async () => {
    if (sw && sw.exitCode === null) {
      const exited = new Promise((r) => sw!.once('exit', r));
      sw.stdin!.end();
      const t = setTimeout(() => sw!.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    // Whatever still runs in the lab is the test's: ended before its network goes, never orphaned.
    for (const ns of made) killAllIn(ns);
    for (const ns of made) ip(['netns', 'del', ns]);
  };
  try {
    for (const h of opts.hosts) {
      const netns = `${opts.prefix}${process.pid}-${h.name}`;
      must(['netns', 'add', netns]);
      made.push(netns);
      must(['-n', netns, 'link', 'set', 'lo', 'up']);
      must(['-n', netns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap']);
      for (const a of h.addresses) must(['-n', netns, 'addr', 'add', `${a}/${opts.cidr}`, 'dev', 'eth0']);
      must(['-n', netns, 'link', 'set', 'eth0', 'up']);
      hosts.set(h.name, { name: h.name, netns, addresses: h.addresses });
    }
    const rtt = (a: string, b: string) => opts.rttMs[a]?.[b] ?? opts.rttMs[b]?.[a] ?? 0;
    const delayMs = Object.fromEntries(opts.hosts.map((a) => [a.name, Object.fromEntries(opts.hosts.map((b) => [b.name, rtt(a.name, b.name) / 2]))]));
    const ports = [...hosts.values()].map((h) => ({ name: h.name, netns: h.netns, dev: 'eth0' }));
    sw = spawn('python3', ['-c', SWITCH, JSON.stringify({ ports, delayMs })], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    sw.stderr!.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: sw.stdout! })[Symbol.asyncIterator]();
    const first = await Promise.race([lines.next(), new Promise<IteratorResult<string>>((r) => sw!.once('exit', () => r({ done: true, value: undefined })))]);
    if (first.value !== 'ready') throw new Error(`the lab switch did not start: ${stderr}`);
    // One command at a time: each answer is the next line.
    let chain: Promise<unknown> = Promise.resolve();
    const send = (c: object) => {
      const next = chain.then(async () => {
        sw!.stdin!.write(`${JSON.stringify(c)}\n`);
        const line = await lines.next();
        if (line.done) throw new Error(`the lab switch exited: ${stderr}`);
        return JSON.parse(line.value) as { forwarded: number; dropped: number };
      });
      chain = next.catch(() => undefined);
      return next;
    };
    return { hosts, block: (host, addresses) => send({ block: host, addresses }), heal: (host) => send({ heal: host }), destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

export type NsProcess = {
  name: string;
  proc: ChildProcess;
  /** Its JSON log lines so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM, then SIGKILL after 3 s. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
};

/**
 * Starts `arus <args>` inside a namespace (`ip netns exec` execs node in place:
 * the child's pid is node's) and waits for its `ready` log line. The process
 * joins `opts.into` at once, so a caller can stop it even if it never gets ready.
 */
export async function startArusIn(host: Host, name: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; into?: NsProcess[] } = {}): Promise<NsProcess> {
  const proc = spawn('ip', ['netns', 'exec', host.netns, process.execPath, BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ARUS_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const running: NsProcess = { name, proc, logs, stop: () => stopProcess(proc), kill9: () => stopProcess(proc, 'SIGKILL') };
  opts.into?.push(running);
  await readyLine(proc, logs, opts.timeoutMs ?? 60_000, () => `${name} (arus ${args.join(' ')})\n${stderr}`);
  return running;
}

/** Runs a command inside a namespace to completion, without blocking the event loop. */
export function execIn(host: Host, cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile('ip', ['netns', 'exec', host.netns, cmd, ...args], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr: stderr || (err?.message ?? '') }),
    ),
  );
}

export type NsDig = { status: string; answers: { name: string; ttl: number; type: string; data: string }[]; raw: string };

/**
 * `dig @server <query> [<query> …]` run from inside `host`'s namespace, each
 * query a list of dig arguments (name, type, options): one process asks them
 * all in turn, and the replies come back in the same order.
 */
export async function digFrom(host: Host, server: string, queries: string[][]): Promise<NsDig[]> {
  const r = await execIn(host, 'dig', ['+time=2', '+tries=1', `@${server}`, ...queries.flat()]);
  const asked = queries.map((q) => q.join(' ')).join('; ');
  if (r.code !== 0) throw new Error(`dig @${server} ${asked} from ${host.name} failed (${r.code}): ${r.stdout}${r.stderr}`);
  const replies = r.stdout.split(';; ->>HEADER<<-').slice(1);
  if (replies.length !== queries.length) throw new Error(`dig @${server} ${asked} from ${host.name}: ${replies.length} replies to ${queries.length} queries\n${r.stdout}`);
  return replies.map((raw) => {
    const section = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(raw)?.[1] ?? '';
    const answers = section
      .split('\n')
      .filter((l) => l && !l.startsWith(';'))
      .map((l) => {
        const [name, ttl, , type, ...data] = l.split(/\s+/);
        return { name, ttl: Number(ttl), type, data: data.join(' ') };
      });
    return { status: /status: (\w+)/.exec(raw)?.[1] ?? 'NONE', answers, raw };
  });
}

/**
 * TCP connect times (ms) from inside `host` to each `targets` HOST:PORT,
 * `samples` connects each: a connect is one round trip.
 */
export async function connectTimes(host: Host, targets: string[], samples = 5): Promise<Record<string, number[]>> {
  const script = `
    const net = require('node:net');
    const [samples, ...targets] = process.argv.slice(1);
    const once = (t) => new Promise((resolve) => {
      const [h, p] = t.split(':');
      const t0 = process.hrtime.bigint();
      const s = net.connect(Number(p), h, () => { resolve(Number(process.hrtime.bigint() - t0) / 1e6); s.destroy(); });
      s.setTimeout(2000, () => { resolve(-1); s.destroy(); });
      s.on('error', () => resolve(-1));
    });
    (async () => {
      const out = {};
      for (const t of targets) { out[t] = []; for (let i = 0; i < Number(samples); i++) out[t].push(await once(t)); }
      console.log(JSON.stringify(out));
    })();`;
  const r = await execIn(host, process.execPath, ['-e', script, String(samples), ...targets]);
  if (r.code !== 0) throw new Error(`connect times from ${host.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number[]>;
}

/**
 * A way in from the test's own namespace: a forwarder inside `host` that
 * accepts on a Unix socket (the file system is shared; the network is not) and
 * connects to `target` HOST:PORT there. Returns an HTTP client through it:
 * HTTPS when `tls` is given, verifying the server's certificate for `target`'s
 * host against `tls.ca` and presenting `tls.cert` (mutual TLS).
 */
export async function httpVia(host: Host, socketPath: string, target: string, tls?: { ca: string; cert?: string; key?: string }) {
  const [h, p] = target.split(':');
  const script = `
    const net = require('node:net'); const fs = require('node:fs');
    const [sock, host, port] = process.argv.slice(1);
    try { fs.unlinkSync(sock); } catch {}
    net.createServer((c) => {
      const u = net.connect(Number(port), host);
      c.pipe(u).pipe(c);
      u.on('error', () => c.destroy()); c.on('error', () => u.destroy());
    }).listen(sock, () => console.log('ready'));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const proc = spawn('ip', ['netns', 'exec', host.netns, process.execPath, '-e', script, socketPath, h, p], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', () => resolve());
    proc.once('exit', (code) => reject(new Error(`the forwarder into ${host.name} exited with ${code}`)));
  });
  // A connection per request (no agent, or agent: false): a kept-alive one would die with control's restarts.
  const call = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const connection = tls
        ? {
            // TLS end to end through the forwarder: it only moves bytes.
            createConnection: () =>
              tlsConnect({
                path: socketPath,
                ca: readFileSync(tls.ca),
                ...(tls.cert && tls.key ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}),
                checkServerIdentity: (_: string, cert: PeerCertificate) => checkServerIdentity(h, cert),
              }),
          }
        : { socketPath, agent: false as const };
      const req = request({ ...connection, method, path, headers: { host: target, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, timeout: 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // Not JSON: keep the text.
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  return {
    call,
    async close() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.stdin.end();
      await exited;
    },
  };
}
