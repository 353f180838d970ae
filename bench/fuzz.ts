// Fuzzing at scale: BENCH_MESSAGES (1,000,000) random and mutated messages
// (bench/fuzz-messages.ts: bit flips, truncation, lying length fields,
// compression loops, random opcodes, flags, EDNS versions and options, huge
// counts, random octets, responses) sent to a multi-worker node,
// `arus dns --db FILE --workers 2`, most over UDP from 16 addresses and a
// share (BENCH_TCP_SHARE, 0.1) pipelined over TCP connections from 4
// addresses, each stream ending in broken framing more often than not.
// Known-good queries (bench/fuzz-check.ts) go after every batch, over UDP from
// 8 sockets and inside every TCP stream, and their answers are checked
// exactly: the right rcode, the right addresses for the ECS subnet.
//
//   npm run fuzz
//
// Passes (exit 0) with: 0 crashes (the node alive and answering at the end,
// then exit code 0 on SIGTERM), 0 wrong answers, 0 insane fuzz replies (QR
// clear, SERVFAIL, over 1232 octets, an rcode we never send), 0 exceptions in
// /metrics, no stall (a check unanswered after 5 tries), and RSS flat: its
// peak after the warm-up (the first 10 % of the messages) at most 20 % over
// its level then.
//
// Environment: BENCH_MESSAGES (1000000), BENCH_SEED (2026), BENCH_WORKERS (2),
// BENCH_TCP_SHARE (0.1), BENCH_BATCH (UDP messages between checks, 2000).
//
// RRL is on with no exemption but the checker's address (127.0.0.1): answers
// and NXDOMAIN at 1,000,000/s, errors at 1,000/s per network, so the fuzzers'
// FORMERR floods are limited (drops and slips are exercised) while the
// checks never are.

import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, rssMiB, sleep } from './common.js';
import { applyRegions, scrape, startArus, workersArgs, workersNote, writeRegions, type ArusProcess } from './dns-arus.js';
import { checkQuery, checks, wrong, type Check } from './fuzz-check.js';
import { answerable, brokenTail, frame, message, seededRandom, type Random } from './fuzz-messages.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const MESSAGES = env('BENCH_MESSAGES', 1_000_000);
const SEED = env('BENCH_SEED', 2026);
const WORKERS = env('BENCH_WORKERS', 2);
const TCP_SHARE = env('BENCH_TCP_SHARE', 0.1);
const BATCH = env('BENCH_BATCH', 2000);
const TCP_FRAMES = 100;
const RRL = { enabled: true, exempt: ['127.0.0.1/32'], responsesPerSecond: 1_000_000, nxdomainsPerSecond: 1_000_000, errorsPerSecond: 1000 };
const ALLOWED_RCODES = new Set([0, 1, 3, 4, 5]);

type Tally = { udpSent: number; tcpSent: number; tcpStreams: number; udpReplies: number; insane: string[]; wrong: string[]; checks: number; checkRetries: number; tails: Record<string, number> };

/** Why a reply to a fuzz message is not one we could ever send; undefined when it could be. */
function insane(reply: Buffer, transport: 'udp' | 'tcp'): string | undefined {
  if (reply.length < 12) return 'a reply shorter than a header';
  if (!(reply[2] & 0x80)) return 'QR clear';
  if ((reply[3] & 0x0f) === 2) return 'SERVFAIL: an exception while answering';
  if (!ALLOWED_RCODES.has(reply[3] & 0x0f)) return `rcode ${reply[3] & 0x0f}`;
  if (transport === 'udp' && reply.length > 1232) return `a UDP reply of ${reply.length} octets`;
  return undefined;
}

const open = (address: string) =>
  new Promise<dgram.Socket>((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, address, () => resolve(s));
  });

/** The checkers: UDP sockets on 127.0.0.1, each asking one check at a time, again when a reply is lost. */
async function createCheckers(port: number, list: Check[], t: Tally, n = 8) {
  const sockets = await Promise.all(Array.from({ length: n }, () => open('127.0.0.1')));
  let next = 0;
  const ask = (s: dgram.Socket, c: Check, id: number) =>
    new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => (s.off('message', on), resolve(undefined)), 1000);
      const on = (m: Buffer) => {
        if (m.length < 2 || m.readUInt16BE(0) !== id) return;
        clearTimeout(timer);
        s.off('message', on);
        resolve(m);
      };
      s.on('message', on);
      s.send(checkQuery(c, id), port, '127.0.0.1');
    });
  /** One check on every socket; throws when one goes unanswered 5 times (a stall). */
  const round = () =>
    Promise.all(
      sockets.map(async (s) => {
        const c = list[next++ % list.length];
        const id = next & 0xffff;
        for (let tries = 1; ; tries++) {
          const reply = await ask(s, c, id);
          if (reply) return record(t, c, id, reply, 'udp');
          if (tries === 5) throw new Error(`no answer to "${c.label}" after 5 tries of 1 s: the node stalled`);
          t.checkRetries++;
        }
      }),
    );
  return { round, close: () => sockets.forEach((s) => s.close()) };
}

function record(t: Tally, c: Check, id: number, reply: Buffer, via: string): void {
  t.checks++;
  let why: string | undefined;
  try {
    why = wrong(c, id, reply);
  } catch (err) {
    why = `unreadable: ${(err as Error).message}`;
  }
  if (why) t.wrong.push(`${via} ${c.label}: ${why}`);
}

/**
 * One TCP stream: TCP_FRAMES answerable fuzz messages pipelined, then a check,
 * then (mostly) broken framing; every answerable message must get its reply,
 * in order, the check's right.
 */
async function tcpStream(port: number, from: string, r: Random, c: Check, id: number, t: Tally): Promise<void> {
  const frames: Buffer[] = [];
  while (frames.length < TCP_FRAMES) {
    const m = message(r);
    if (answerable(m) && m.length <= 65535) frames.push(m);
  }
  const tail = brokenTail(r);
  t.tails[tail.kind] = (t.tails[tail.kind] ?? 0) + 1;
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
  socket.on('error', () => {});
  const replies: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`TCP stream from ${from}: ${replies.length} of ${frames.length + 1} replies in 10 s: the node stalled`)), 10_000);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      if (replies.length >= frames.length + 1) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (replies.length < frames.length + 1) reject(new Error(`TCP stream from ${from}: closed after ${replies.length} of ${frames.length + 1} replies`));
    });
    socket.on('connect', () => socket.end(Buffer.concat([...frames.map(frame), frame(checkQuery(c, id)), tail.bytes])));
  });
  socket.destroy();
  t.tcpSent += frames.length + (tail.bytes.length ? 1 : 0);
  t.tcpStreams++;
  frames.forEach((m, i) => {
    const why = replies[i].readUInt16BE(0) !== m.readUInt16BE(0) ? 'ID differs (out of order?)' : insane(replies[i], 'tcp');
    if (why) t.insane.push(`tcp: ${why}: ${m.toString('hex').slice(0, 120)}`);
  });
  record(t, c, id, replies[frames.length], 'tcp');
}

type Rss = { start: number; warm: number; peak: number; end: number };

async function fuzz(node: ArusProcess, port: number, t: Tally, rss: Rss): Promise<number> {
  const list = checks();
  const checkers = await createCheckers(port, list, t);
  // Before any fuzz: the node agrees with the expected answers (else the table is wrong, not the node).
  await checkers.round();
  await checkers.round();
  if (t.wrong.length) throw new Error(`before any fuzz, the node's answers differ from the expected ones:\n${t.wrong.join('\n')}`);
  const fuzzers = await Promise.all(Array.from({ length: 16 }, (_, i) => open(`127.1.${i}.1`)));
  for (const s of fuzzers)
    s.on('message', (reply: Buffer) => {
      t.udpReplies++;
      const why = insane(reply, 'udp');
      if (why && t.insane.length < 100) t.insane.push(`udp: ${why}: ${reply.toString('hex').slice(0, 120)}`);
    });
  const r = seededRandom(SEED);
  const tcpEvery = TCP_SHARE > 0 ? Math.max(1, Math.round((4 * TCP_FRAMES * (1 - TCP_SHARE)) / (TCP_SHARE * BATCH))) : Infinity;
  const sampler = setInterval(() => (rss.peak = Math.max(rss.peak, rssMiB(node.pid))), 250);
  const started = performance.now();
  let warm = false;
  try {
    for (let b = 0; t.udpSent + t.tcpSent < MESSAGES; b++) {
      if (node.proc.exitCode !== null || node.proc.signalCode !== null) throw new Error(`the node died (${node.proc.exitCode ?? node.proc.signalCode})`);
      const n = Math.min(BATCH, MESSAGES - t.udpSent - t.tcpSent);
      for (let i = 0; i < n; i++) fuzzers[i & 15].send(message(r), port, '127.0.0.1');
      t.udpSent += n;
      // Four streams at a time from four addresses, every tcpEvery batches: TCP_SHARE of the messages.
      if (b % tcpEvery === 0)
        await Promise.all([0, 1, 2, 3].map((k) => tcpStream(port, `127.2.${k}.1`, r, list[(b + k) % list.length], 0x8000 | ((b * 4 + k) & 0x7fff), t)));
      await checkers.round();
      if (!warm && t.udpSent + t.tcpSent >= MESSAGES / 10) {
        warm = true;
        rss.warm = rssMiB(node.pid);
        rss.peak = rss.warm;
      }
      const sent = t.udpSent + t.tcpSent;
      if (Math.floor(sent / (MESSAGES / 10)) > Math.floor((sent - n) / (MESSAGES / 10)))
        console.log(`  ${sent} messages, ${t.checks} checks (${t.wrong.length} wrong); RSS ${rssMiB(node.pid).toFixed(0)} MiB; ${Math.round(sent / ((performance.now() - started) / 1000))} msgs/s`);
    }
    // Whatever is still queued answered; then the node must still be right, on every checker.
    await sleep(500);
    for (let i = 0; i < 3; i++) await checkers.round();
  } finally {
    clearInterval(sampler);
    rss.end = rssMiB(node.pid);
    for (const s of fuzzers) s.close();
    checkers.close();
  }
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'arus-fuzz-'));
  const db = join(dir, 'arus.db');
  applyRegions(db, writeRegions(dir, { rrl: RRL }));
  const [port, metricsPort] = [await freePort(), await freePort()];
  const args = ['dns', '--db', db, '--dns-listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, ...workersArgs('dns', WORKERS)];
  console.log(`fuzz: ${MESSAGES} messages (seed ${SEED}; ${Math.round(TCP_SHARE * 100)} % over TCP) to arus ${args.join(' ')}`);
  console.log(`RRL: ${JSON.stringify(RRL)}`);
  const note = workersNote('dns');
  if (note) console.log(note);
  const node = await startArus(args);
  const t: Tally = { udpSent: 0, tcpSent: 0, tcpStreams: 0, udpReplies: 0, insane: [], wrong: [], checks: 0, checkRetries: 0, tails: {} };
  const rss: Rss = { start: rssMiB(node.pid), warm: NaN, peak: 0, end: NaN };
  const failures: string[] = [];
  let seconds = NaN;
  let counters: Record<string, number> = {};
  try {
    seconds = await fuzz(node, port, t, rss);
    counters = await scrape(`http://127.0.0.1:${metricsPort}/metrics`, ['arus_dns_queries_total', 'arus_dns_errors_total', 'arus_dns_rrl_limited_total', 'arus_dns_dropped_total', 'arus_dns_truncated_total']);
  } catch (err) {
    failures.push(`crash or stall: ${(err as Error).message}`);
  }
  const exit = await node.stop();
  rmSync(dir, { recursive: true, force: true });

  const total = t.udpSent + t.tcpSent;
  console.log(`sent ${total} messages in ${seconds.toFixed(1)} s: ${Math.round(total / seconds)} msgs/s`);
  console.log(`  UDP ${t.udpSent} from 16 addresses (${t.udpReplies} replies; the rest dropped by design, rate-limited or lost in full socket buffers)`);
  console.log(`  TCP ${t.tcpSent} on ${t.tcpStreams} streams; stream tails: ${Object.entries(t.tails).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`  checks: ${t.checks} answered and compared (${t.checkRetries} asked again after a lost reply), ${t.wrong.length} wrong`);
  console.log(`  node's /metrics: ${JSON.stringify(counters)}`);
  console.log(`  RSS MiB: start ${rss.start.toFixed(0)}, after warm-up ${rss.warm.toFixed(0)}, peak after warm-up ${rss.peak.toFixed(0)}, end ${rss.end.toFixed(0)}`);
  console.log(`  exit on SIGTERM: ${exit}; error log lines: ${node.errors.length}`);
  if (t.wrong.length) failures.push(`${t.wrong.length} wrong answers, first: ${t.wrong.slice(0, 5).join(' | ')}`);
  if (t.insane.length) failures.push(`${t.insane.length} replies we could never send, first: ${t.insane.slice(0, 5).join(' | ')}`);
  if (counters.arus_dns_errors_total) failures.push(`${counters.arus_dns_errors_total} exceptions while answering (arus_dns_errors_total)`);
  if (rss.peak > rss.warm * 1.2) failures.push(`RSS grew ${(((rss.peak - rss.warm) / rss.warm) * 100).toFixed(0)} % after the warm-up (limit 20 %)`);
  if (exit !== 0) failures.push(`the node exited ${exit} on SIGTERM`);
  if (node.errors.length) failures.push(`${node.errors.length} error log lines, first: ${JSON.stringify(node.errors[0])}`);
  if (failures.length) {
    console.log(`\nFAILED:\n- ${failures.join('\n- ')}`);
    process.exit(1);
  }
  console.log('\npassed: 0 crashes, 0 wrong answers, 0 insane replies, RSS flat');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
