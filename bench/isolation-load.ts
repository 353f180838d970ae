// The control-plane load bench:isolation puts beside DNS: admin clients
// PATCHing regions as fast as the API accepts them, and probe agents
// reporting at their full rate, each with its own bound token (as
// bench/probe-flood.ts makes them: tokens written to the database before
// `arus up` starts, reports of many results for the configured endpoints).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/db/database.js';
import { createTokenStore } from '../src/db/tokens.js';
import { Agent, fetch } from 'undici';
import { sleep } from './common.js';

export const REGIONS = ['sg', 'jkt', 'bkk', 'mnl'];

export type Agents = { id: string; region: string; token: string }[];

/** `count` probe agents' bound tokens, written to `db` (a new database: `arus up` seeds it later). */
export function createAgents(db: string, count: number): Agents {
  const dbh = openDatabase(db);
  const tokens = createTokenStore(dbh);
  const agents = Array.from({ length: count }, (_, a) => {
    const region = REGIONS[a % REGIONS.length];
    const id = `bench-${a}`;
    return { id, region, token: tokens.create({ role: 'probe', agent: id, region }).token };
  });
  dbh.$client.close();
  return agents;
}

export type Load = {
  /** Stops every loop and waits for the requests in flight. */
  stop(): Promise<void>;
  /** Counts so far: writes and reports by HTTP status, and since when. */
  counts(): { writes: Record<number, number>; reports: Record<number, number>; errors: number; startedAt: number };
};

const bump = (m: Record<number, number>, status: number) => void (m[status] = (m[status] ?? 0) + 1);

/**
 * Starts the load against control's API at `base`: `writers` closed loops
 * PATCHing a region's name (a real change each time: a new configuration
 * version and snapshot), and every agent reporting `results` results per
 * report, `reportRate` reports a second each (0: back to back).
 */
export async function startLoad(opts: { base: string; admin: string; writers: number; agents: Agents; results: number; reportRate: number }): Promise<Load> {
  const { base, admin } = opts;
  const dispatcher = new Agent({ connections: opts.writers + opts.agents.length, pipelining: 1 });
  const auth = { authorization: `Bearer ${admin}` };
  const listed = (await (await fetch(`${base}/v1/regions`, { headers: auth, dispatcher })).json()) as { regions: { id: string; zones: { id: string; endpoints: { address: string }[] }[] }[] };
  const endpoints = listed.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => `${r.id}/${z.id}/${e.address}`)));
  const writes: Record<number, number> = {};
  const reports: Record<number, number> = {};
  let errors = 0;
  let running = true;
  const startedAt = performance.now();

  const writer = async (w: number) => {
    const region = REGIONS[w % REGIONS.length];
    for (let i = 0; running; i++) {
      try {
        const res = await fetch(`${base}/v1/regions/${region}`, {
          method: 'PATCH',
          headers: { ...auth, 'content-type': 'application/merge-patch+json' },
          body: JSON.stringify({ name: `${region} bench ${w}.${i}` }),
          dispatcher,
        });
        await res.arrayBuffer();
        bump(writes, res.status);
      } catch {
        errors++;
        await sleep(50);
      }
    }
  };

  const reporter = async (agent: Agents[number]) => {
    const every = opts.reportRate > 0 ? 1000 / opts.reportRate : 0;
    // Spread the agents' first reports over one interval.
    await sleep(Math.random() * every);
    while (running) {
      const t0 = performance.now();
      const at = Date.now();
      const results = Array.from({ length: opts.results }, (_, k) => ({ endpoint: endpoints[k % endpoints.length], ok: true, rttMs: 1 + (k % 7), at: at - (opts.results - k) }));
      try {
        const res = await fetch(`${base}/v1/probes/report`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${agent.token}` },
          body: JSON.stringify({ agent: { id: agent.id, region: agent.region }, targets: endpoints.length, results }),
          dispatcher,
        });
        await res.arrayBuffer();
        bump(reports, res.status);
      } catch {
        errors++;
      }
      const left = every - (performance.now() - t0);
      if (left > 0) await sleep(left);
    }
  };

  const loops = [...Array.from({ length: opts.writers }, (_, w) => writer(w)), ...opts.agents.map(reporter)];
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      await dispatcher.close();
    },
    counts: () => ({ writes: { ...writes }, reports: { ...reports }, errors, startedAt }),
  };
}

export type LoadOptions = Parameters<typeof startLoad>[0];
export type LoadChild = { stop(): Promise<ReturnType<Load['counts']>>; counts(): Promise<ReturnType<Load['counts']>>; pid: number };

/**
 * The load in a process of its own under `nice -n nice` (the clients are not
 * the system under test: elsewhere they run on other machines), driven over IPC.
 */
export function spawnLoad(opts: LoadOptions, nice: number): Promise<LoadChild> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn('nice', ['-n', String(nice), process.execPath, '--import', 'tsx', self, '--child', JSON.stringify(opts)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = (type: 'counts' | 'stop') =>
    new Promise<ReturnType<Load['counts']>>((resolve, reject) => {
      child.once('message', (m) => resolve(m as ReturnType<Load['counts']>));
      child.once('exit', (code) => reject(new Error(`the load process exited (${code})`)));
      child.send({ type });
    });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the load process exited (${code}) before it started`)));
    child.once('message', () => {
      child.removeAllListeners('exit');
      resolve({ pid: child.pid!, counts: () => ask('counts'), stop: () => ask('stop').finally(() => child.disconnect()) });
    });
  });
}

if (process.argv[2] === '--child') {
  const load = await startLoad(JSON.parse(process.argv[3]) as LoadOptions);
  process.send!({ started: true });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'counts') process.send!(load.counts());
    else void load.stop().then(() => process.send!(load.counts()));
  });
}
