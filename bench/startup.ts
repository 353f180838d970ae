// Start-up benchmark: how long `arus dns` takes from spawn to its first UDP
// answer, and how long `arus --help` takes, through bin/arus.js as an
// operator runs it (dist/ when it is built and current, else the sources
// through tsx's loader: the bench says which).
//
//   npm run bench:startup [-- --tree DIR] [-- --baseline DIR]
//
// --tree DIR       the tree to measure (default: this repository)
// --baseline DIR   a second tree (e.g. the one before a change), measured
//                  interleaved with --tree, run by run; the ratio tree/baseline
//                  of the medians is printed
// Environment: BENCH_RUNS (10), BENCH_WORKERS (the nodes' --workers; unset:
// their default, one per core).
//
// Each tree gets a temporary database seeded with `arus apply regions/` and one
// untimed run of each command first, so that tsx's transform cache is warm and
// every timed run starts the same way. The DNS node is asked
// `api.gslb.example.com A` every POLL_MS from the moment it is spawned; the
// first NOERROR reply with an answer stops the clock.
//
// Restart with control down (issue 17's promise: answers from the snapshot on
// disk within 300 ms of being spawned): once per tree, a node follows a real
// `arus control` (plain HTTP on loopback, a dns token) until it has written
// its --snapshot file, and its answer for `api A` from an Indonesian ECS
// subnet is kept. Then each timed run spawns
// `arus dns --control http://127.0.0.1:<a port nobody listens on> --snapshot
// <a fresh copy of that file>` and the clock stops at the first reply that
// is that same answer.

import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Packet } from 'dns2';
import { ecsOf, query } from '../src/dns/fixtures.js';
import { freePort, median, sleep } from './common.js';
import { startArus } from './dns-arus.js';

const RUNS = process.env.BENCH_RUNS ? Number(process.env.BENCH_RUNS) : 10;
const POLL_MS = 3;
const TIMEOUT_MS = 30_000;
const HERE = resolve(fileURLToPath(new URL('..', import.meta.url)));
const WORKERS = process.env.BENCH_WORKERS !== undefined ? ['--workers', process.env.BENCH_WORKERS] : [];
const RESTART_TARGET_MS = 300;

type Tree = { label: string; dir: string; db: string; dns: number[]; help: number[]; restart: number[]; snapshot?: { file: string; token: string; expected: string } };

/** Runs `node bin/arus.js ...args` in `dir`; resolves with the exit code, rejects on a spawn error. */
function arus(dir: string, args: string[]) {
  return spawn(process.execPath, ['bin/arus.js', ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function exited(child: ReturnType<typeof arus>): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => done({ code, stderr }));
  });
}

async function seed(dir: string): Promise<string> {
  const db = join(mkdtempSync(join(tmpdir(), 'arus-startup-')), 'arus.db');
  const { code, stderr } = await exited(arus(dir, ['apply', 'regions/', '--db', db]));
  if (code !== 0) throw new Error(`${dir}: arus apply regions/ failed (${code}):\n${stderr}`);
  return db;
}

/** True for a NOERROR reply with at least one answer record. */
function answered(reply: Buffer): boolean {
  return reply.length >= 12 && (reply[3] & 0x0f) === 0 && reply.readUInt16BE(6) > 0;
}

/** The sorted A addresses of a NOERROR reply, joined; undefined for any other reply. */
function addresses(reply: Buffer): string | undefined {
  if (!answered(reply)) return undefined;
  try {
    return Packet.parse(reply)
      .answers.filter((a) => a.type === Packet.TYPE.A)
      .map((a) => (a as { address: string }).address)
      .sort()
      .join(' ');
  } catch {
    return undefined;
  }
}

/** Milliseconds from spawning `arus ...args` (its DNS on `dnsPort`) to its first reply that `ok` takes; the node is stopped before this resolves. */
async function timeFirstAnswer(tree: Tree, args: string[], dnsPort: number, question: Buffer, ok: (reply: Buffer) => boolean): Promise<number> {
  const socket = dgram.createSocket('udp4');
  const started = performance.now();
  const child = arus(tree.dir, args);
  const exit = exited(child);
  try {
    return await new Promise<number>((done, fail) => {
      socket.on('message', (reply) => {
        if (ok(reply)) done(performance.now() - started);
      });
      const poll = setInterval(() => socket.send(question, dnsPort, '127.0.0.1'), POLL_MS);
      const timeout = setTimeout(() => fail(new Error(`${tree.label}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      void exit.then(({ code, stderr }) => fail(new Error(`${tree.label}: arus ${args[0]} exited (${code}) before answering:\n${stderr}`)));
      socket.once('close', () => (clearInterval(poll), clearTimeout(timeout)));
    });
  } finally {
    socket.close();
    child.kill('SIGTERM');
    await exit;
  }
}

const listenArgs = async () => {
  const [dnsPort, metricsPort] = [await freePort(), await freePort()];
  return { dnsPort, args: ['--dns-listen', `127.0.0.1:${dnsPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, ...WORKERS] };
};

/** Milliseconds from spawning `arus dns --db` to its first answer. */
async function timeDns(tree: Tree): Promise<number> {
  const { dnsPort, args } = await listenArgs();
  return timeFirstAnswer(tree, ['dns', '--db', tree.db, ...args], dnsPort, query({ id: 0x5157, name: 'api.gslb.example.com', type: 1 }), answered);
}

const INDONESIA = () => query({ id: 0x5158, name: 'api.gslb.example.com', type: 1, opt: { options: [ecsOf('36.66.7.0/24')] } });

/**
 * Once per tree: `arus control` on its database and a node following it until
 * the node has written its --snapshot file; the node's answer to INDONESIA kept.
 */
async function prime(tree: Tree): Promise<NonNullable<Tree['snapshot']>> {
  const made = spawnSync(process.execPath, ['bin/arus.js', 'token', 'create', '--role', 'dns', '--node', 'bench-startup', '--db', tree.db], { cwd: tree.dir, encoding: 'utf8' });
  const token = /arus_[A-Za-z0-9_-]{20,}/.exec(made.stdout)?.[0];
  if (!token) throw new Error(`${tree.label}: arus token create failed (${made.status}):\n${made.stdout}${made.stderr}`);
  const file = join(tree.db, '..', 'snapshot.json');
  const apiPort = await freePort();
  const control = await startArus(['control', '--db', tree.db, '--api-listen', `127.0.0.1:${apiPort}`], { root: tree.dir });
  try {
    const { dnsPort, args } = await listenArgs();
    const node = await startArus(['dns', '--control', `http://127.0.0.1:${apiPort}`, '--token', token, '--snapshot', file, ...args], { root: tree.dir });
    try {
      let expected: string | undefined;
      const socket = dgram.createSocket('udp4');
      socket.on('message', (reply) => (expected = addresses(reply)));
      for (let i = 0; i < 300 && !(expected && existsSync(file)); i++) {
        socket.send(INDONESIA(), dnsPort, '127.0.0.1');
        await sleep(100);
      }
      socket.close();
      if (!expected || !existsSync(file)) throw new Error(`${tree.label}: the node following control wrote no ${file} or gave no answer in 30 s`);
      return { file, token, expected };
    } finally {
      await node.stop();
    }
  } finally {
    await control.stop();
  }
}

/** Milliseconds from spawning `arus dns --control <dead>` with a copy of the primed snapshot to its first answer, the same as the primed node's. */
async function timeRestart(tree: Tree): Promise<number> {
  const { file, token, expected } = tree.snapshot!;
  const copy = `${file}.${tree.restart.length}.json`;
  copyFileSync(file, copy);
  const dead = await freePort();
  const { dnsPort, args } = await listenArgs();
  const ms = await timeFirstAnswer(tree, ['dns', '--control', `http://127.0.0.1:${dead}`, '--token', token, '--snapshot', copy, ...args], dnsPort, INDONESIA(), (r) => addresses(r) === expected);
  rmSync(copy, { force: true });
  return ms;
}

/** Milliseconds for `arus --help` to print and exit. */
async function timeHelp(tree: Tree): Promise<number> {
  const started = performance.now();
  const { code, stderr } = await exited(arus(tree.dir, ['--help']));
  if (code !== 0) throw new Error(`${tree.label}: arus --help exited ${code}:\n${stderr}`);
  return performance.now() - started;
}

function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)];
}

const ms = (x: number) => `${x.toFixed(0).padStart(5)} ms`;

/** Whether the tree's bin/arus.js runs dist/ (built and current) or the sources through tsx. */
function runs(dir: string): string {
  const r = spawnSync(process.execPath, ['bin/arus.js', '--help'], { cwd: dir, encoding: 'utf8' });
  if (/older than src/.test(r.stderr)) return 'the sources through tsx (dist/ is older than src/: npm run build)';
  return existsSync(join(dir, 'dist', '.built')) ? 'dist/ (compiled JavaScript)' : 'the sources through tsx (no dist/: npm run build)';
}

function printTree(t: Tree): void {
  const restart = median(t.restart);
  console.log(`${t.label.padEnd(9)} ${t.dir}: bin/arus.js runs ${runs(t.dir)}`);
  console.log(`  arus dns --db → first answer                        median ${ms(median(t.dns))}   p90 ${ms(p90(t.dns))}`);
  console.log(`  arus dns --control (down) --snapshot → first answer median ${ms(restart)}   p90 ${ms(p90(t.restart))}   max ${ms(Math.max(...t.restart))}`);
  console.log(`  arus --help                                         median ${ms(median(t.help))}   p90 ${ms(p90(t.help))}`);
  console.log(`  target: restarted with control down, answers from its snapshot on disk within ${RESTART_TARGET_MS} ms of being spawned (median): ${restart <= RESTART_TARGET_MS ? 'met' : 'MISSED'}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tree: { type: 'string', default: HERE }, baseline: { type: 'string' } } });
  const dirs = [{ label: 'tree', dir: resolve(values.tree) }, ...(values.baseline ? [{ label: 'baseline', dir: resolve(values.baseline) }] : [])];
  const trees: Tree[] = [];
  for (const d of dirs) trees.push({ ...d, db: await seed(d.dir), dns: [], help: [], restart: [] });
  // Untimed: fills tsx's transform cache for this tree's sources (when it runs them), and the snapshot file.
  for (const t of trees) {
    t.snapshot = await prime(t);
    await timeDns(t);
    await timeRestart(t);
    await timeHelp(t);
  }
  for (let run = 0; run < RUNS; run++) {
    for (const t of run % 2 ? [...trees].reverse() : trees) {
      t.dns.push(await timeDns(t));
      t.restart.push(await timeRestart(t));
      t.help.push(await timeHelp(t));
    }
  }
  console.log(`start-up over ${RUNS} runs${trees.length > 1 ? ', trees interleaved' : ''} (node ${process.version}; the nodes' --workers: ${WORKERS[1] ?? 'their default'})\n`);
  for (const t of trees) printTree(t);
  if (trees.length > 1) {
    const [t, b] = trees;
    console.log(`\nratio tree/baseline (medians): dns --db ${(median(t.dns) / median(b.dns)).toFixed(2)}×, dns from its snapshot ${(median(t.restart) / median(b.restart)).toFixed(2)}×, --help ${(median(t.help) / median(b.help)).toFixed(2)}×`);
  }
  for (const t of trees) rmSync(join(t.db, '..'), { recursive: true, force: true });
}

await main();
