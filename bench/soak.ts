// Soak: `arus up` under steady dnsperf load while model servers crash and come
// back and the admin API is written to, all at once, for a set time. A checker
// asks DNS itself from many client subnets and counts every answer that holds
// the address of an endpoint that had been down (dead or drained) for longer
// than the fail-over budget. Prints wrong answers, errors, crashes and the RSS
// of the arus process over time; exits 1 if any answer was wrong or anything
// crashed.
//
//   npm run soak                      # 600 s
//   SOAK_SECONDS=120 npm run soak     # a quick run
//
// Environment: SOAK_SECONDS (600), SOAK_QPS (dnsperf -Q, 5000), SOAK_BUDGET_MS
// (3000), SOAK_MAX_DOWN (endpoints dead or drained at once, 3 of 8).
//
// Every port is free-picked on 127.0.0.1; the database and regions are in a
// temporary folder. The regions are copies of regions/ without the demo
// balancers, each zone's check pointed at its own `arus sim` process, so that
// an endpoint can be killed (SIGKILL, then started again on the same port),
// crashed (POST /admin/fault crash: the listener closes) or made to fail its
// checks (POST /admin/fault error: HTTP 500s).
//
// The fail-over budget: probes every 500 ms and fall 2 put a dead endpoint out
// of the answers 0.5–1.0 s after it dies, plus the check's own time (a refused
// connect or a 500 is immediate) and the report and snapshot publish (tens of
// ms); bench:failover measures 0.8–1.1 s, the target is 1.5 s. The budget is
// twice the target, 3 s, because this soak runs beside dnsperf on a shared
// machine where a probe round can be late by a scheduling hiccup: an answer is
// wrong when its query was *sent* more than 3 s after the endpoint died (or its
// drain was acknowledged). The slowest removal actually seen is printed, so a
// budget that is too loose shows.
//
// The parts live in bench/soak/: settings, state (what the soak knows and
// counts), processes, flapper (endpoints down and back), writer (the admin
// API), checker (DNS asked and judged), dnsperf, rss and report.

import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REGION_IDS, regionsWithChecks } from '../test/helpers/regions.js';
import { ALL_SUBNETS, freePort, sleep, writeQueryFile } from './common.js';
import { checker } from './soak/checker.js';
import { dnsperf } from './soak/dnsperf.js';
import { flapper, startSim } from './soak/flapper.js';
import { kill, killAllOnExit, startArus, stopCounting } from './soak/processes.js';
import { printReport } from './soak/report.js';
import { sampleRss } from './soak/rss.js';
import { BUDGET_MS, MAX_DOWN, QPS, SECONDS } from './soak/settings.js';
import { createSoak, type Soak } from './soak/state.js';
import { api, writer } from './soak/writer.js';

// The checker's own lag: a reply read late by this process is not Arus's fault, and shows here.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/** Two endpoints a region, each on its own port: 127.0.1.<region><1|2>. */
async function planEndpoints(soak: Soak): Promise<void> {
  for (const region of REGION_IDS)
    for (const [n, zone] of [`${region}-a`, `${region}-b`].entries()) {
      const address = `127.0.1.${REGION_IDS.indexOf(region) + 1}${n + 1}`;
      const e = { region, zone, address, port: await freePort() };
      soak.endpoints.push(e);
      soak.byAddress.set(address, e);
    }
}

/** `arus up` over the regions in `dir`, its error logs counted; the soak's API URL set; the DNS port. */
async function startUp(soak: Soak, dir: string): Promise<{ up: ChildProcess; dnsPort: number }> {
  const regions = regionsWithChecks(dir, (zone) => soak.endpoints.find((e) => e.zone === zone)!.port);
  const { counts } = soak;
  const { proc: up, ready } = await startArus(
    ['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'],
    'up',
    counts.crashes,
    (entry) => {
      if (typeof entry.level === 'number' && entry.level >= 50) {
        counts.arusErrorLogs++;
        if (counts.arusErrorLogs <= 5) console.error(`arus logged: ${JSON.stringify(entry).slice(0, 300)}`);
      }
    },
  );
  soak.apiUrl = String(ready.api);
  return { up, dnsPort: (ready.udp as { port: number }[])[0].port };
}

/** Every probe agent reporting, then a 2 s settle; the API calls of the wait are not counted. */
async function waitForAgents(soak: Soak): Promise<void> {
  for (;;) {
    const h = (await api(soak, 'GET', '/v1/health')) as { agents: { fresh: boolean }[] } | undefined;
    if (h && h.agents.filter((a) => a.fresh).length === 4) break;
    await sleep(200);
  }
  soak.counts.api.ok = 0;
  await sleep(2000);
}

function printPlan(): void {
  console.log(`Arus soak: ${SECONDS} s; dnsperf at ${QPS} q/s (api A/AAAA, pinned, apex, NXDOMAIN; ECS from ${ALL_SUBNETS.length} /16s on 90 %)`);
  console.log(`flaps: one endpoint every 1.5–4 s killed, crashed or failing (500s) for 4–15 s; API: drains (3–10 s), weight PATCHes, TTL PATCHes every 1–3 s; at most ${MAX_DOWN} of 8 endpoints unavailable at once`);
  console.log(`checker: api A every 20 ms from ${ALL_SUBNETS.length} subnets and the resolver address; wrong = an address dead or drained for more than ${BUDGET_MS} ms when the query was sent\n`);
}

async function main(): Promise<number> {
  if (spawnSync('dnsperf', ['-h']).error) {
    console.error('dnsperf not found on PATH (Debian: apt-get install dnsperf)');
    return 2;
  }
  const soak = createSoak();
  const dir = mkdtempSync(join(tmpdir(), 'arus-soak-'));
  const children: ChildProcess[] = [];
  try {
    await planEndpoints(soak);
    await Promise.all(soak.endpoints.map((e) => startSim(soak, e)));
    const { up, dnsPort } = await startUp(soak, dir);
    children.push(up);
    await waitForAgents(soak);

    const file = join(dir, 'queries.bin');
    writeQueryFile(file);
    const start = Date.now();
    const end = start + SECONDS * 1000;
    printPlan();
    const rss = sampleRss(soak, up.pid!, start);
    const [perf] = await Promise.all([dnsperf(dnsPort, file, SECONDS), checker(soak, dnsPort, end), flapper(soak, end), writer(soak, end)]);
    rss.stop();
    const upAlive = up.exitCode === null && up.signalCode === null;
    stopCounting();
    printReport(soak, { perf, rss: rss.samples, start, elapsed: (Date.now() - start) / 1000, upAlive, loopDelay });
    return soak.wrong.length > 0 || soak.counts.crashes.length > 0 || !upAlive ? 1 : 0;
  } finally {
    stopCounting();
    await Promise.all([...children, ...soak.endpoints.map((e) => e.proc).filter((p): p is ChildProcess => !!p)].map((p) => kill(p, 'SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  }
}

killAllOnExit();

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
