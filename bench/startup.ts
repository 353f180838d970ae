// Start-up benchmark: how long `arus dns` takes from spawn to its first UDP
// answer, and how long `arus --help` takes, through bin/arus.js (tsx's loader,
// as an operator runs it).
//
//   npm run bench:startup [-- --tree DIR] [-- --baseline DIR]
//
// --tree DIR       the tree to measure (default: this repository)
// --baseline DIR   a second tree (e.g. the one before a change), measured
//                  interleaved with --tree, run by run; the ratio tree/baseline
//                  of the medians is printed
// Environment: BENCH_RUNS (10).
//
// Each tree gets a temporary database seeded with `arus apply regions/` and one
// untimed run of each command first, so that tsx's transform cache is warm and
// every timed run starts the same way. The DNS node is asked
// `api.gslb.example.com A` every POLL_MS from the moment it is spawned; the
// first NOERROR reply with an answer stops the clock.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { query } from '../src/dns/fixtures.js';
import { freePort, median } from './common.js';

const RUNS = process.env.BENCH_RUNS ? Number(process.env.BENCH_RUNS) : 10;
const POLL_MS = 3;
const TIMEOUT_MS = 30_000;
const HERE = resolve(fileURLToPath(new URL('..', import.meta.url)));

type Tree = { label: string; dir: string; db: string; dns: number[]; help: number[] };

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

/** Milliseconds from spawning `arus dns --db` to its first answer; the node is stopped before this resolves. */
async function timeDns(tree: Tree): Promise<number> {
  const [dnsPort, metricsPort] = [await freePort(), await freePort()];
  const socket = dgram.createSocket('udp4');
  const question = query({ id: 0x5157, name: 'api.gslb.example.com', type: 1 });
  const started = performance.now();
  const child = arus(tree.dir, ['dns', '--db', tree.db, '--dns-listen', `127.0.0.1:${dnsPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`]);
  const exit = exited(child);
  try {
    return await new Promise<number>((done, fail) => {
      socket.on('message', (reply) => {
        if (answered(reply)) done(performance.now() - started);
      });
      const poll = setInterval(() => socket.send(question, dnsPort, '127.0.0.1'), POLL_MS);
      const timeout = setTimeout(() => fail(new Error(`${tree.label}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      void exit.then(({ code, stderr }) => fail(new Error(`${tree.label}: arus dns exited (${code}) before answering:\n${stderr}`)));
      socket.once('close', () => (clearInterval(poll), clearTimeout(timeout)));
    });
  } finally {
    socket.close();
    child.kill('SIGTERM');
    await exit;
  }
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

function printTree(t: Tree): void {
  console.log(`${t.label.padEnd(9)} ${t.dir}`);
  console.log(`  arus dns → first answer   median ${ms(median(t.dns))}   p90 ${ms(p90(t.dns))}`);
  console.log(`  arus --help               median ${ms(median(t.help))}   p90 ${ms(p90(t.help))}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tree: { type: 'string', default: HERE }, baseline: { type: 'string' } } });
  const dirs = [{ label: 'tree', dir: resolve(values.tree) }, ...(values.baseline ? [{ label: 'baseline', dir: resolve(values.baseline) }] : [])];
  const trees: Tree[] = [];
  for (const d of dirs) trees.push({ ...d, db: await seed(d.dir), dns: [], help: [] });
  // Untimed: fills tsx's transform cache for this tree's sources.
  for (const t of trees) {
    await timeDns(t);
    await timeHelp(t);
  }
  for (let run = 0; run < RUNS; run++) {
    for (const t of run % 2 ? [...trees].reverse() : trees) {
      t.dns.push(await timeDns(t));
      t.help.push(await timeHelp(t));
    }
  }
  console.log(`start-up over ${RUNS} runs${trees.length > 1 ? ', trees interleaved' : ''} (node ${process.version})\n`);
  for (const t of trees) printTree(t);
  if (trees.length > 1) {
    const [t, b] = trees;
    console.log(`\nratio tree/baseline (medians): dns ${(median(t.dns) / median(b.dns)).toFixed(2)}×, --help ${(median(t.help) / median(b.help)).toFixed(2)}×`);
  }
  for (const t of trees) rmSync(join(t.db, '..'), { recursive: true, force: true });
}

await main();
