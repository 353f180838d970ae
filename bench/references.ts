// References, side by side: the same zone, regions, endpoints, health-check
// targets and client locations served by Arus (`arus up`), gdnsd (geoip
// plugin, extmon health checks), PowerDNS (Lua records: ifurlextup over
// groups ordered by pickclosest) and Knot (geoip module, no health checks),
// loaded with the same dnsperf query file, then timed failing over when both
// Jakarta model servers die. One table, as ratios against Arus. A second Arus
// row (arus-lb, fail-over only) runs the demo's path: Jakarta's endpoints are
// its balancer, in front of the same two model servers, and the balancer's
// report takes Jakarta out (issue 20).
//
//   npm run bench:references
//
// Needs Debian's dnsperf, gdnsd, pdns-server + pdns-backend-bind +
// pdns-backend-geoip, knot + knot-module-geoip, and curl (gdnsd's check
// command). A server that is missing or does not start is a row that says so.
//
// Environment: BENCH_SECONDS (20), BENCH_RUNS (3, medians), BENCH_FAILOVER_RUNS
// (3, medians), BENCH_SERVER_CPU (1), BENCH_CLIENT_CPU (0), BENCH_OUTSTANDING
// (dnsperf -q, 100), BENCH_ONLY (comma-separated: arus,arus-w2,arus-w0,arus-lb,
// gdnsd,pdns,knot).
//
// Locations: one MaxMind-format database, written here (City-shaped:
// continent.code, country.iso_code, location), is read by all three
// references. It holds every /24 of the query mix's 17 /16s with the country
// that Arus's own database (ip-location-db) gives it and that country's point
// from world-countries (the point Arus measures distances from), and the
// endpoints' addresses at their regions' coordinates (PowerDNS's pickclosest
// locates answer candidates in the same database). Before the load the bench
// asks every server the same questions and prints any answer that differs
// from Arus's. Arus keeps reading its full database.
//
// The parts live in bench/references/ beside the servers' templates: settings,
// shared-config (regions, zone, location database), processes, servers and
// zone-files (each server started its own way), ask, answers (ready and the
// same answers?), load, failover and table.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './common.js';
import { compareAnswers, waitReady } from './references/answers.js';
import { createAsker } from './references/ask.js';
import type { Bench } from './references/context.js';
import { measureFailover } from './references/failover.js';
import { measureLoad } from './references/load.js';
import { has, killAllOnExit, startSim, stopAll } from './references/processes.js';
import { planServers, startServers } from './references/servers.js';
import { readRegions, writeGeoDb, type Region } from './references/shared-config.js';
import { printTable } from './references/table.js';

function checkTools(): void {
  for (const [tool, args] of [
    ['dnsperf', ['-h']],
    ['taskset', ['-c', '0', 'true']],
  ] as const)
    if (!has(tool, [...args])) throw new Error(`${tool} not found (Debian: apt-get install ${tool === 'taskset' ? 'util-linux' : tool})`);
}

/** The model servers every health check points at: one `arus sim` per zone, on the client's core. */
async function startSims(regions: Region[]): Promise<Map<string, { port: number; proc?: ChildProcess }>> {
  const sims = new Map<string, { port: number; proc?: ChildProcess }>();
  for (const r of regions) for (const e of r.endpoints) sims.set(e.zone, { port: await freePort() });
  for (const s of sims.values()) s.proc = await startSim(s.port);
  return sims;
}

async function main(): Promise<void> {
  checkTools();
  const dir = mkdtempSync(join(tmpdir(), 'arus-references-'));
  const { regions, zone } = readRegions();
  const db = join(dir, 'geo.mmdb');
  const countryOf = writeGeoDb(db, regions);
  const jkt = regions.find((r) => r.id === 'jkt')!;
  const sims = await startSims(regions);
  const urls = new Map(regions.flatMap((r) => r.endpoints.map((e) => [e.address, `http://127.0.0.1:${sims.get(e.zone)!.port}/v1/models`] as const)));
  const servers = planServers();
  await startServers(servers, { dir, regions, zone, urls, db, simPort: (z) => sims.get(z)!.port });
  const asker = createAsker();
  const bench: Bench = {
    dir,
    regions,
    countryOf,
    jkt,
    jktAddresses: new Set(jkt.endpoints.map((e) => e.address)),
    sims,
    servers,
    arus: servers[0],
    live: () => servers.filter((s) => !s.failed),
    asker,
  };
  try {
    await waitReady(bench);
    await compareAnswers(bench);
    const { results, rss } = await measureLoad(bench);
    const failovers = await measureFailover(bench);
    printTable(bench, { results, rss, failovers });
  } finally {
    await stopAll([...servers.map((s) => s.proc), ...[...sims.values()].map((s) => s.proc)]);
    asker.close();
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

killAllOnExit();

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
