// The signed rows of bench:dns (DNSSEC, issue 21): the signed zone's database
// and control, the query files with DO set, the replies checked for their
// RRSIGs, and the signing cost per reply.
//
// Why control: `arus dns --db` builds its snapshots in src/snapshot/source.ts
// (createDbStateSource), which calls buildSnapshot without `dnssec`: a DNS node
// on a signed database answers DO queries unsigned (no RRSIG, NXDOMAIN rather
// than compact denial, NODATA for DNSKEY) and logs no warning, since its
// snapshot does not say the zone is signed. Only control's publisher
// (src/control/publish.ts, keys from src/control/zone-keys.ts) adds it. So the
// signed rows run `arus control` on the signed database (pinned beside dnsperf:
// it sits idle once it has published) and each signed row's `arus dns
// --control URL --token T`, with the token of a dns node named in
// zone.dnssec.signers, pinned alone to the server core as the other rows are.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../src/steer/steer.js';
import { freePort } from './common.js';
import { applyRegions, ARUS_ROOT, BIN, startArus, writeRegions, type ArusProcess } from './dns-arus.js';

const RRSIG = 46;
const NSEC = 47;
const OPT = 41;

// ---------------------------------------------------------------- the signed zone

function arus(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ARUS_ROOT, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  if (r.status !== 0) throw new Error(`arus ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

export type SignedZone = { db: string; tokens: Record<string, string>; ds: string };

/**
 * regions/ with `zone` merged and `dnssec.signers` set to `nodes`, applied to
 * `dir`/signed.db; `arus dnssec init` (a KSK and a ZSK, ECDSA P-256); a dns
 * token for each node.
 */
export function prepareSignedZone(dir: string, zone: Record<string, unknown>, nodes: string[]): SignedZone {
  const db = join(dir, 'signed.db');
  applyRegions(db, writeRegions(join(dir, 'signed'), { ...zone, dnssec: { signers: nodes } }));
  const init = arus(['dnssec', 'init', '--db', db]);
  const ds = /^\S+\s+\d+\s+IN\s+DS\s+.*$/m.exec(init)?.[0] ?? '';
  const tokens: Record<string, string> = {};
  for (const node of nodes) {
    const out = arus(['token', 'create', '--role', 'dns', '--node', node, '--name', node, '--db', db]);
    const token = /^\s+(\S+)\s*$/m.exec(out)?.[1];
    if (!token) throw new Error(`arus token create printed no token:\n${out}`);
    tokens[node] = token;
  }
  return { db, tokens, ds };
}

/** `arus control --db db` on loopback (pinned to `cpus` when given); its API URL. */
export async function startSignedControl(db: string, cpus?: string): Promise<{ url: string; arus: ArusProcess }> {
  const port = await freePort();
  const proc = await startArus(['control', '--db', db, '--api-listen', `127.0.0.1:${port}`], { cpus });
  return { url: `http://127.0.0.1:${port}`, arus: proc };
}

// ---------------------------------------------------------------- query files

/** The length-prefixed messages of a dnsperf -B file. */
export function readQueryFile(path: string): Buffer[] {
  const data = readFileSync(path);
  const out: Buffer[] = [];
  for (let p = 0; p < data.length; ) {
    const n = data.readUInt16BE(p);
    out.push(data.subarray(p + 2, p + 2 + n));
    p += 2 + n;
  }
  return out;
}

function writeFrames(path: string, messages: Buffer[]): void {
  const frames: Buffer[] = [];
  for (const m of messages) frames.push(Buffer.from([m.length >> 8, m.length & 0xff]), m);
  writeFileSync(path, Buffer.concat(frames));
}

/** A copy of a query (one question, OPT the one additional record) with the DO bit set. */
export function withDo(query: Buffer): Buffer {
  const q = Buffer.from(query);
  if (q.readUInt16BE(4) !== 1 || q.readUInt16BE(6) !== 0 || q.readUInt16BE(8) !== 0 || q.readUInt16BE(10) !== 1) throw new Error('withDo: a query with one question and only an OPT record expected');
  let p = 12;
  while (q[p] !== 0) p += q[p] + 1;
  p += 1 + 4; // root label, QTYPE, QCLASS
  if (q[p] !== 0 || q.readUInt16BE(p + 1) !== OPT) throw new Error('withDo: no OPT record after the question');
  q[p + 7] |= 0x80; // the OPT TTL's flags: DO is the top bit
  return q;
}

/** `src` (a dnsperf -B file) written again to `dst` with DO set on every query; the count. */
export function writeDoQueryFile(src: string, dst: string): number {
  const messages = readQueryFile(src).map(withDo);
  writeFrames(dst, messages);
  return messages.length;
}

const APEX = ['gslb', 'example', 'com'];
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A dnsperf -B file of `count` names that do not exist, each asked once:
 * `<7 random letters and digits><the index, base 36>.gslb.example.com` (a
 * 12-octet label no name of the zone has), type A, EDNS (1232) with DO when
 * `dnssecOk`, no ECS. Seeded: one file per seed.
 */
export function writeNxQueryFile(path: string, count: number, seed: number, dnssecOk = true): void {
  const random = seededRandom(seed);
  const labelLen = 12;
  const tail = Buffer.from(APEX.flatMap((l) => [l.length, ...Buffer.from(l)]).concat([0]));
  const size = 12 + 1 + labelLen + tail.length + 4 + 11;
  if (count > 36 ** 5) throw new Error('writeNxQueryFile: at most 36^5 names');
  const out = Buffer.alloc(count * (2 + size));
  let p = 0;
  for (let i = 0; i < count; i++) {
    out.writeUInt16BE(size, p);
    p += 2;
    out.writeUInt16BE(0, p); // ID (dnsperf rewrites it)
    out.writeUInt16BE(0x0100, p + 2); // RD, as the mix's queries
    out.writeUInt16BE(1, p + 4);
    out.writeUInt16BE(0, p + 6);
    out.writeUInt16BE(0, p + 8);
    out.writeUInt16BE(1, p + 10);
    p += 12;
    out[p++] = labelLen;
    for (let k = 0; k < 7; k++) out[p++] = ALNUM.charCodeAt(Math.floor(random() * 36));
    out.write(i.toString(36).padStart(5, '0'), p, 'latin1');
    p += 5;
    tail.copy(out, p);
    p += tail.length;
    out.writeUInt16BE(1, p); // A
    out.writeUInt16BE(1, p + 2); // IN
    p += 4;
    // OPT: root owner, type 41, size 1232, extended RCODE 0, version 0, flags (DO), no options.
    out[p] = 0;
    out.writeUInt16BE(OPT, p + 1);
    out.writeUInt16BE(1232, p + 3);
    out.writeUInt32BE(dnssecOk ? 0x8000 : 0, p + 5);
    out.writeUInt16BE(0, p + 9);
    p += 11;
  }
  writeFileSync(path, out);
}

// ---------------------------------------------------------------- asking and reading replies

/** Sends every query to 127.0.0.1:`port` (`window` outstanding, each tried up to 3 times); the replies, undefined where none came. */
export async function ask(port: number, queries: Buffer[], window = 32): Promise<(Buffer | undefined)[]> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const replies: (Buffer | undefined)[] = new Array<Buffer | undefined>(queries.length);
  const waiting = new Map<number, number>(); // id -> index
  socket.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const i = waiting.get(id);
    if (i === undefined) return;
    waiting.delete(id);
    replies[i] = msg;
  });
  try {
    for (let start = 0; start < queries.length; start += window) {
      const batch = queries.slice(start, start + window).map((_, k) => start + k);
      for (let attempt = 0; attempt < 3; attempt++) {
        const missing = batch.filter((i) => replies[i] === undefined);
        if (missing.length === 0) break;
        for (const i of missing) {
          const id = (i * 7 + attempt) & 0xffff;
          waiting.set(id, i);
          const q = Buffer.from(queries[i]);
          q.writeUInt16BE(id, 0);
          socket.send(q, port, '127.0.0.1');
        }
        const deadline = Date.now() + 1000;
        while (Date.now() < deadline && missing.some((i) => replies[i] === undefined)) await new Promise((r) => setTimeout(r, 1));
        for (const i of missing) if (replies[i] === undefined) waiting.delete((i * 7 + attempt) & 0xffff);
      }
    }
  } finally {
    socket.close();
  }
  return replies;
}

type Record_ = { type: number; rdata: Buffer };
export type Reply = { rcode: number; tc: boolean; an: Record_[]; ns: Record_[]; ar: Record_[] };

function skipName(m: Buffer, p: number): number {
  for (;;) {
    const len = m[p];
    if (len === undefined) throw new Error('a name runs past the message');
    if ((len & 0xc0) === 0xc0) return p + 2;
    if (len === 0) return p + 1;
    p += len + 1;
  }
}

/** The sections of a reply (types and raw RDATA), its RCODE (the OPT's extended bits included) and TC. */
export function parseReply(m: Buffer): Reply {
  const flags = m.readUInt16BE(2);
  let p = 12;
  for (let i = 0; i < m.readUInt16BE(4); i++) p = skipName(m, p) + 4;
  const read = (n: number) => {
    const out: Record_[] = [];
    for (let i = 0; i < n; i++) {
      p = skipName(m, p);
      const type = m.readUInt16BE(p);
      const len = m.readUInt16BE(p + 8);
      out.push({ type, rdata: m.subarray(p + 10, p + 10 + len) });
      p += 10 + len;
    }
    return out;
  };
  const an = read(m.readUInt16BE(6));
  const ns = read(m.readUInt16BE(8));
  const arStart = p;
  const ar = read(m.readUInt16BE(10));
  let rcode = flags & 0xf;
  // The OPT's TTL: its top octet is the extended RCODE.
  p = arStart;
  for (const r of ar) {
    p = skipName(m, p);
    if (r.type === OPT) rcode |= m[p + 4] << 4;
    p += 10 + r.rdata.length;
  }
  return { rcode, tc: (flags & 0x0200) !== 0, an, ns, ar };
}

/**
 * Why a reply to a DO query in the signed zone is not a signed one, or
 * undefined when it is: NOERROR, not truncated, and every RRset of the answer
 * and authority sections covered by an RRSIG (its type covered is the RRSIG
 * RDATA's first two octets); for a name that does not exist (`nx`), an NSEC
 * among them.
 */
export function unsignedBecause(reply: Buffer | undefined, nx = false): string | undefined {
  if (!reply) return 'no reply';
  const r = parseReply(reply);
  if (r.rcode !== 0) return `rcode ${r.rcode}`;
  if (r.tc) return 'truncated';
  const records = [...r.an, ...r.ns];
  const covered = new Set(records.filter((x) => x.type === RRSIG).map((x) => x.rdata.readUInt16BE(0)));
  if (covered.size === 0) return 'no RRSIG';
  const bare = [...new Set(records.filter((x) => x.type !== RRSIG).map((x) => x.type))].filter((t) => !covered.has(t));
  if (bare.length) return `RRsets of type ${bare.join(', ')} without an RRSIG`;
  if (nx && !r.ns.some((x) => x.type === NSEC)) return 'no NSEC (compact denial)';
  return undefined;
}

/** The steered part of a reply: its A and AAAA addresses, sorted; '' for none. */
export function addresses(reply: Buffer | undefined): string {
  if (!reply) return 'no reply';
  return parseReply(reply)
    .an.filter((x) => x.type === 1 || x.type === 28)
    .map((x) => `${x.type}:${x.rdata.toString('hex')}`)
    .sort()
    .join(',');
}

// ---------------------------------------------------------------- signing cost

/**
 * A micro-measurement in this process: node's crypto.sign with ECDSA P-256,
 * SHA-256, dsaEncoding 'ieee-p1363' (what src/dnssec/sign.ts calls for
 * algorithm 13) over a 150-octet buffer (about an NSEC RRSIG's signed data);
 * µs per signature, the median of `batches` batches of `n`.
 */
export function signCostUs(batches = 9, n = 1000): number {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const data = randomBytes(150);
  for (let i = 0; i < 300; i++) sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const per: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    per.push(Number(process.hrtime.bigint() - t) / 1000 / n);
  }
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)];
}

/** dnsperf's "Response codes:" line as counts by name. */
export function rcodeCounts(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/([A-Z]+)\s+(\d+)\s+\(/g)) out[m[1]] = Number(m[2]);
  return out;
}
