// The load: the same dnsperf query file against every live server, the runs
// alternating so that the noise of a shared machine falls on all alike; then
// each server's RSS.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDnsperf, writeQueryFile, type DnsperfResult } from '../common.js';
import type { Bench } from './context.js';
import type { Server } from './processes.js';
import { CLIENT_CPU, OUTSTANDING, RUNS, SECONDS, SERVER_CPU } from './settings.js';

export type Result = DnsperfResult;
const dnsperf = (port: number, file: string, seconds: number): Promise<Result> => runDnsperf({ port, file, seconds, outstanding: OUTSTANDING, cpu: CLIENT_CPU });

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** RUNS dnsperf runs of SECONDS against each live server (after a 2 s warm-up each), and the servers' RSS after them. */
export async function measureLoad(b: Bench): Promise<{ results: Map<Server, Result[]>; rss: Map<Server, number> }> {
  const file = join(b.dir, 'queries.bin');
  writeQueryFile(file);
  console.log(`\nload: ${RUNS} run(s) of ${SECONDS} s each, alternating; servers pinned to CPU ${SERVER_CPU}, dnsperf (-q ${OUTSTANDING}) to CPU ${CLIENT_CPU}`);
  const results = new Map<Server, Result[]>();
  for (const s of b.live().filter((x) => !x.failoverOnly)) {
    try {
      if (RUNS > 0) await dnsperf(s.port, file, 2); // warm-up
      results.set(s, []);
    } catch (err) {
      s.failed = `dnsperf: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  for (let run = 1; run <= RUNS; run++)
    for (const s of b.live().filter((x) => !x.failoverOnly)) {
      const r = await dnsperf(s.port, file, SECONDS);
      results.get(s)!.push(r);
      console.log(`run ${run} ${s.name.padEnd(5)}: ${Math.round(r.qps)} q/s, p99 ${r.p99ms.toFixed(2)} ms, lost ${r.lost}; ${r.rcodes}`);
    }
  return { results, rss: new Map(b.live().filter((x) => !x.failoverOnly).map((s) => [s, rssMiB(s.pid!)])) };
}
