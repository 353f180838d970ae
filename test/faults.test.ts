// Faults, black box: the real `arus` as a child process while its database is
// locked by another process or its disk is full, while it is killed -9 in a
// burst of writes, and while it is flooded with probe reports. DNS keeps
// answering throughout; the API says what is wrong; nothing is half-written.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createTokens } from './helpers/credentials.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { fill, mountTmpfs, pool, rssKb, unfill } from './helpers/faults.js';
import { REGION_IDS, regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'faults-admin-token';
const env = { ARUS_ADMIN_TOKEN: ADMIN };
const JKT = ['127.0.1.21', '127.0.1.22'];

type Region = { id: string; name: string; zones: { id: string; endpoints: { address: string }[] }[] };

/** API calls; with `dispatcher`, on its connections only (undici's own fetch, so the two agree). */
function client(base: () => string, dispatcher?: Agent) {
  return (method: string, path: string, body?: unknown, token = ADMIN) =>
    undiciFetch(`${base()}${path}`, {
      dispatcher,
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
}

/** Control's storage counters from /metrics: busy errors, and writes refused in the back-off without reaching SQLite. */
async function storage(server: Running) {
  const text = await (await fetch(`${server.api}/metrics`)).text();
  const read = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return { busy: read(/^arus_storage_errors_total\{kind="busy"\} (\d+)/m), shortCircuited: read(/^arus_storage_writes_short_circuited_total (\d+)/m) };
}

/** `arus up` with the regions and no health checks (every endpoint up until probes say otherwise). */
function startUp(dir: string, db: string) {
  const regions = regionsWithChecks(dir, () => undefined);
  return startArus(['up', '--db', db, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], { env, timeoutMs: 30_000 });
}

const indonesia = async (server: Running) =>
  (await digAsync('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])).answers
    .filter((a) => a.type === 'A')
    .map((a) => a.data)
    .sort();

/** A probe token for each agent, bound to it and its region, written before control opens `db`; returns agent id → its token. */
function probeTokens(db: string, agents: { id: string; region: string }[]): (agent: string) => string {
  const tokens = createTokens(db, agents.map((a) => ({ role: 'probe', agent: a.id, region: a.region })));
  const of = new Map(agents.map((a, i) => [a.id, tokens[i]]));
  return (agent) => {
    const token = of.get(agent);
    if (!token) throw new Error(`no probe token made for ${agent}`);
    return token;
  };
}

const endpointsOf = (regions: Region[]) => regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => `${r.id}/${z.id}/${e.address}`)));

describe.skipIf(!requireDig)('faults: arus up while another process locks its database, and under a flood of probe reports', () => {
  let server: Running;
  let dbFile: string;
  let probe: (agent: string) => string;
  const api = client(() => server.api!);
  const AGENTS = 25;
  const NEWCOMERS = 300;

  beforeAll(async () => {
    const dir = tempDir('arus-faults-');
    dbFile = join(dir, 'arus.db');
    // Every agent of the flood has its own token, as a real fleet does: the flood is of reports, not of identities.
    probe = probeTokens(dbFile, [
      ...Array.from({ length: AGENTS }, (_, a) => ({ id: `flood-${a}`, region: REGION_IDS[a % 4] })),
      ...Array.from({ length: NEWCOMERS }, (_, i) => ({ id: `newcomer-${i}`, region: 'sg' })),
    ]);
    server = await startUp(dir, dbFile);
  }, 60_000);
  afterAll(async () => server?.stop());

  it('answers 503 + Retry-After while the database is locked, keeps reads and DNS going, and takes writes again once it is released', async () => {
    const sg = (await (await api('GET', '/v1/regions/sg')).json()) as Region;
    const holder = new Database(dbFile);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const t0 = performance.now();
      const [first, answers] = await Promise.all([api('PUT', '/v1/regions/sg', { ...sg, name: 'Singapore (locked)' }), indonesia(server)]);
      const firstMs = performance.now() - t0;
      expect(first.status).toBe(503);
      expect(first.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await first.json()) as { error: string }).error).toMatch(/^the database is locked: another connection held it for over 1 s: .*nothing was written/);
      expect(answers).toEqual(JKT);
      // Within the back-off the next write fails at once: the event loop is not held again. The first waited
      // out the 1 s busy timeout (its message says so; it did not wait for the lock's holder, which lets go
      // only below). The next never reaches SQLite: refused by the back-off, no busy error of its own.
      const before = await storage(server);
      const t1 = performance.now();
      const second = await api('POST', '/v1/regions/jkt/drain', { reason: 'while locked' });
      const secondMs = performance.now() - t1;
      expect(second.status).toBe(503);
      expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
      const after = await storage(server);
      console.log(`locked database: first write answered 503 in ${firstMs.toFixed(0)} ms, the next in ${secondMs.toFixed(0)} ms (short-circuited: ${before.shortCircuited} → ${after.shortCircuited})`);
      expect(after.shortCircuited).toBeGreaterThan(before.shortCircuited);
      expect(after.busy).toBe(before.busy);
      expect((await api('GET', '/v1/regions')).status).toBe(200);
      expect((await api('GET', '/v1/health')).status).toBe(200);
      expect(await indonesia(server)).toEqual(JKT);
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    const res = await until(() => api('PUT', '/v1/regions/sg', { ...sg, name: 'Singapore (after the lock)' }), (r) => r.status === 200, 15_000, 250);
    expect(res.status).toBe(200);
    // Nothing of the refused writes: no audit row, no drain.
    const audit = (await (await api('GET', '/v1/audit?subject=region:sg')).json()) as { entries: { after: { name?: string } | null }[] };
    expect(audit.entries.map((e) => e.after?.name)).toEqual(['Singapore (after the lock)']);
    expect(await indonesia(server)).toEqual(JKT);
    const kinds = async () => ((await (await api('GET', '/v1/events?limit=50')).json()) as { events: { kind: string }[] }).events.map((e) => e.kind);
    await until(kinds, (k) => k.includes('storage.failed') && k.includes('storage.recovered'), 5000);
    expect((await storage(server)).busy).toBeGreaterThanOrEqual(1);
  });

  it('stays within bounded memory under a flood of probe reports, refuses the excess with 429, records it, and keeps answering', { timeout: 120_000 }, async () => {
    const regions = ((await (await api('GET', '/v1/regions')).json()) as { regions: Region[] }).regions;
    const endpoints = endpointsOf(regions);
    const pid = server.proc.pid!;
    const rssBefore = rssKb(pid);
    let rssMax = rssBefore;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssKb(pid))), 50);
    const REPORTS = 1000;
    const RESULTS = 1000;
    const base = Date.now();
    const statuses: Record<number, number> = {};
    const dnsDuring: string[][] = [];
    const t0 = performance.now();
    // Each phase on connections of its own: a keep-alive connection left idle by an earlier step can be the
    // one the server is closing as it is handed out again (the test's loop late under load), an ECONNRESET
    // that says nothing of control. Within a phase every connection is busy.
    const phases = [new Agent(), new Agent()];
    const [floodApi, newcomerApi] = phases.map((d) => client(() => server.api!, d));
    try {
      const flood = pool(REPORTS, 32, async (i) => {
        // Agent-major: each agent sends its 40 reports as fast as it can, past its burst of 20.
        const agent = Math.floor(i / (REPORTS / AGENTS));
        const at = base + i;
        const results = Array.from({ length: RESULTS }, (_, k) => ({ endpoint: endpoints[k % endpoints.length], ok: true, rttMs: 1 + (k % 7), at: at - (RESULTS - k) }));
        const body = JSON.stringify({ agent: { id: `flood-${agent}`, region: REGION_IDS[agent % 4] }, targets: 1, results });
        const res = await floodApi('POST', '/v1/probes/report', body, probe(`flood-${agent}`));
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      });
      const dns = (async () => {
        for (let i = 0; i < 5; i++) {
          dnsDuring.push(await indonesia(server));
          await new Promise((r) => setTimeout(r, 300));
        }
      })();
      await Promise.all([flood, dns]);
      // Then more agents than control tracks, all live at once.
      const newcomers = await pool(NEWCOMERS, 32, async (i) => {
        const res = await newcomerApi('POST', '/v1/probes/report', { agent: { id: `newcomer-${i}`, region: 'sg' }, targets: 1, results: [{ endpoint: endpoints[0], ok: true, rttMs: 1, at: Date.now() }] }, probe(`newcomer-${i}`));
        await res.arrayBuffer();
        return res.status;
      });
      statuses[-429] = newcomers.filter((s) => s === 429).length;
    } finally {
      clearInterval(sampler);
      await Promise.all(phases.map((d) => d.close()));
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `probe flood: ${REPORTS} reports × ${RESULTS} results from ${AGENTS} agents in ${seconds.toFixed(1)} s: ${JSON.stringify(statuses)}; ` +
        `control's RSS ${Math.round(rssBefore / 1024)} MB before, at most ${Math.round(rssMax / 1024)} MB during`,
    );
    expect(statuses[200]).toBeGreaterThan(0);
    expect(statuses[429]).toBeGreaterThan(0);
    // The limit on tracked agents acted: newcomers replaced silent agents (each recorded), or were refused while all were live.
    const forgotten = ((await (await api('GET', '/v1/events?kind=agent.forgotten&limit=1000')).json()) as { events: unknown[] }).events.length;
    expect(forgotten + statuses[-429]).toBeGreaterThan(0);
    expect(Object.keys(statuses).map(Number).filter((s) => ![200, 429, -429].includes(s))).toEqual([]);
    console.log(`agent limit: ${forgotten} silent agents forgotten for newcomers, ${statuses[-429]} newcomers refused`);
    expect(rssMax).toBeLessThan(rssBefore + 200 * 1024);
    expect(dnsDuring.length).toBe(5);
    for (const a of dnsDuring) expect(a).toEqual(JKT);

    expect((await api('GET', '/v1/regions')).status).toBe(200);
    const metrics = await (await fetch(`${server.api}/metrics`)).text();
    expect(Number(/^arus_probe_reports_refused_total\{reason="rate"\} (\d+)/m.exec(metrics)?.[1])).toBe(statuses[429]);
    expect(Number(/^arus_probe_reports_refused_total\{reason="agents"\} (\d+)/m.exec(metrics)?.[1])).toBe(statuses[-429]);
    const limited = (await (await api('GET', '/v1/events?kind=probe.limited')).json()) as { events: { reason: string }[] };
    expect(limited.events.length).toBeGreaterThanOrEqual(1);
    expect(limited.events.at(-1)!.reason).toMatch(/refused with 429/);
    const probes = (await (await api('GET', '/v1/probes')).json()) as { agents: { id: string; recent: unknown[] }[] };
    expect(probes.agents.length).toBeLessThanOrEqual(256);
    // One row per endpoint per report at most: the newest of each.
    for (const a of probes.agents) expect(a.recent.length).toBeLessThanOrEqual(endpoints.length);
  });
});

describe.skipIf(!requireDig)('faults: arus up on a full disk', () => {
  const dir = tempDir('arus-full-');
  const mount = mountTmpfs(join(dir, 'disk'), 8);
  let server: Running;
  let filler: string | undefined;
  let probe: (agent: string) => string;
  const api = client(() => server.api!);

  beforeAll(async () => {
    if (!mount.ok) return;
    probe = probeTokens(join(dir, 'disk', 'arus.db'), Array.from({ length: 5 }, (_, a) => ({ id: `full-${a}`, region: REGION_IDS[a % 4] })));
    server = await startUp(dir, join(dir, 'disk', 'arus.db'));
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    if (mount.ok) mount.unmount();
  });

  it.skipIf(!mount.ok)(`answers 503 "the disk is full", keeps following probe health in DNS, and writes the history once there is room${mount.ok ? '' : ` (skipped: ${mount.reason})`}`, async () => {
    const regions = ((await (await api('GET', '/v1/regions')).json()) as { regions: Region[] }).regions;
    const jkt = endpointsOf(regions).filter((e) => e.startsWith('jkt/'));
    filler = fill(join(dir, 'disk'));
    const sg = regions.find((r) => r.id === 'sg')!;
    const res = await api('PUT', '/v1/regions/sg', { ...sg, name: 'Singapore (disk full)' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toMatch(/^the disk is full: .*SQLITE_FULL.*nothing was written/);
    expect(await indonesia(server)).toEqual(JKT);

    // Five agents see Jakarta fail: health is kept in memory, so DNS still moves Indonesia away.
    for (let round = 1; round <= 3; round++)
      for (let a = 0; a < 5; a++) {
        const r = await api('POST', '/v1/probes/report', { agent: { id: `full-${a}`, region: REGION_IDS[a % 4] }, targets: 1, results: jkt.map((endpoint) => ({ endpoint, ok: false, error: 'refused', at: Date.now() + round })) }, probe(`full-${a}`));
        expect(r.status).toBe(200);
      }
    const moved = await until(() => indonesia(server), (a) => a.length > 0 && !a.some((x) => JKT.includes(x)), 5000, 100);
    expect(moved.length).toBeGreaterThan(0);

    unfill(filler);
    filler = undefined;
    const put = await until(() => api('PUT', '/v1/regions/sg', { ...sg, name: 'Singapore (room again)' }), (r) => r.status === 200, 15_000, 250);
    expect(put.status).toBe(200);
    const events = async () => ((await (await api('GET', '/v1/events?limit=200')).json()) as { events: { kind: string; time: number; newState: string }[] }).events;
    const history = await until(events, (e) => e.some((x) => x.kind === 'storage.recovered') && e.some((x) => x.kind === 'endpoint.down'), 15_000, 250);
    expect(history.find((e) => e.kind === 'storage.failed')).toMatchObject({ newState: 'full' });
    const check = new Database(join(dir, 'disk', 'arus.db'), { readonly: true });
    try {
      expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      check.close();
    }
  });
});

describe('faults: kill -9 of control during a burst of writes', () => {
  const dir = tempDir('arus-kill-');
  const dbFile = join(dir, 'arus.db');
  const regionsDir = regionsWithChecks(dir, () => undefined);
  let control: Running | undefined;
  const api = client(() => control!.api!);
  const start = () => startArus(['control', '--db', dbFile, '--regions', regionsDir, '--api-listen', '127.0.0.1:0'], { env, timeoutMs: 30_000 });
  afterAll(async () => control?.stop());

  it('after a restart every acknowledged write is there whole (document, event, audit row), and the rest are there whole or not at all', { timeout: 90_000 }, async () => {
    control = await start();
    const originals = ((await (await api('GET', '/v1/regions')).json()) as { regions: Region[] }).regions;
    const peek = new Database(dbFile, { readonly: true });
    const versionBefore = Number((peek.prepare("SELECT value FROM meta WHERE key = 'config_version'").get() as { value: string }).value);
    const eventsBefore = (peek.prepare('SELECT max(id) AS id FROM events').get() as { id: number }).id;
    peek.close();

    const PER_REGION = 75;
    const acked: Record<string, number> = {};
    const sent: Record<string, number> = {};
    let total = 0;
    let killed = false;
    const proc = control.proc;
    const writers = originals.map(async (r) => {
      for (let n = 1; n <= PER_REGION && !killed; n++) {
        sent[r.id] = n;
        try {
          const res = await api('PUT', `/v1/regions/${r.id}`, { ...r, name: `${r.name} #${n}` });
          if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
          await res.arrayBuffer();
          acked[r.id] = n;
          if (++total === 120) {
            killed = true;
            proc.kill('SIGKILL');
          }
        } catch (err) {
          if (!killed) throw err;
          return;
        }
      }
    });
    await Promise.all(writers);
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(undefined) : proc.once('exit', r)));
    expect(proc.signalCode).toBe('SIGKILL');

    control = await start();
    const after = ((await (await api('GET', '/v1/regions')).json()) as { regions: Region[] }).regions;
    const db = new Database(dbFile, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const version = Number((db.prepare("SELECT value FROM meta WHERE key = 'config_version'").get() as { value: string }).value);
      const applied = db.prepare("SELECT subject FROM events WHERE id > ? AND kind = 'config.applied'").all(eventsBefore) as { subject: string }[];
      const audit = db.prepare("SELECT subject, after FROM audit WHERE action LIKE 'PUT /v1/regions/%'").all() as { subject: string; after: string }[];
      // The version moved once per write, with one event each: no write without its history.
      expect(version - versionBefore).toBe(applied.length);
      let found = 0;
      for (const r of originals) {
        const stored = after.find((x) => x.id === r.id)!;
        const n = Number(/#(\d+)$/.exec(stored.name)?.[1] ?? 0);
        const names = audit.filter((a) => a.subject === `region:${r.id}`).map((a) => (JSON.parse(a.after) as Region).name);
        // Acknowledged: there. In flight at the kill: there whole or not at all. Never a later one.
        expect(n).toBeGreaterThanOrEqual(acked[r.id] ?? 0);
        expect(n).toBeLessThanOrEqual(sent[r.id] ?? 0);
        expect(names).toEqual(Array.from({ length: n }, (_, i) => `${r.name} #${i + 1}`));
        expect(applied.filter((e) => e.subject === `region:${r.id}`)).toHaveLength(n);
        found += n;
      }
      const ackedTotal = Object.values(acked).reduce((a, b) => a + b, 0);
      console.log(`kill -9 in a burst: ${ackedTotal} writes acknowledged, ${found} found after restart (${found - ackedTotal} in flight at the kill, there whole); integrity_check ok`);
      expect(ackedTotal).toBeGreaterThanOrEqual(120);
    } finally {
      db.close();
    }
  });
});
