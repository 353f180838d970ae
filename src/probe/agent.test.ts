import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Check } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { createProbeAgent, jitteredDelay, type ProbeAgent, type ProbeAgentOptions } from './agent.js';
import { fetchBackoffMs } from './control-session.js';
import type { ProbeReport, ProbeResult, ProbeTarget, ProbeTargets } from './types.js';

const TOKEN = 'probe-secret';
const cleanup: Array<() => unknown> = [];

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

type Received = { at: number; body: ProbeReport };

/**
 * A stand-in for control: serves targets, records reports, and can fail
 * (503), or go away entirely (connections refused) and come back on its port.
 */
async function fakeControl(initial: ProbeTargets) {
  let targets = initial;
  let mode: 'ok' | 'error' | 'hang' = 'ok';
  let failTargetFetches = 0;
  const reports: Received[] = [];
  /** Reports that arrived while control failed or hung, as sent. */
  const refused: ProbeReport[] = [];
  const targetFetches: number[] = [];
  let server: Server | undefined;
  let port = 0;

  const handler = async (req: IncomingMessage, res: import('node:http').ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { error: 'bad token' });
    if (mode !== 'ok' && req.method === 'POST' && req.url === '/v1/probes/report') refused.push(JSON.parse(Buffer.concat(chunks).toString()));
    if (mode === 'hang') return; // accepted, never answered
    if (mode === 'error') return json(503, { error: 'control is having a bad day' });
    if (req.method === 'GET' && req.url === '/v1/probes/targets') {
      targetFetches.push(performance.now());
      if (failTargetFetches > 0) {
        failTargetFetches--;
        return json(503, { error: 'not yet' });
      }
      return json(200, targets);
    }
    if (req.method === 'POST' && req.url === '/v1/probes/report') {
      reports.push({ at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString()) });
      return json(200, { targets: targets.version });
    }
    json(404, { error: 'no route' });
  };

  async function up() {
    const s = createServer((req, res) => void handler(req, res));
    await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
    port = (s.address() as AddressInfo).port;
    server = s;
  }
  async function down() {
    const s = server;
    server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await up();
  cleanup.push(down);

  return {
    url: `http://127.0.0.1:${port}`,
    reports,
    refused,
    targetFetches,
    /** Every result received, in order. */
    results: () => reports.flatMap((r) => r.body.results),
    setTargets: (t: ProbeTargets) => void (targets = t),
    setMode: (m: 'ok' | 'error' | 'hang') => void (mode = m),
    failTargetFetches: (n: number) => void (failTargetFetches = n),
    up,
    down,
  };
}

async function sim(opts: Parameters<typeof createSimServer>[0] extends infer O ? Partial<O> : never = {}) {
  const s: SimServer = createSimServer({ log: silentLogger(), ...opts });
  const { port } = await s.start();
  cleanup.push(() => s.stop());
  return { s, port, base: `http://127.0.0.1:${port}` };
}

function agent(controlUrl: string, opts: Partial<ProbeAgentOptions> = {}): ProbeAgent {
  const a = createProbeAgent({ id: 'probe-sg-1', region: 'sg', controlUrl, token: TOKEN, intervalMs: 50, jitter: 0.2, log: silentLogger(), ...opts });
  a.start();
  cleanup.push(() => a.stop());
  return a;
}

const http = (url: string, extra: Partial<Extract<Check, { type: 'http' }>> = {}): Check => ({
  type: 'http',
  url,
  status: 200,
  timeoutMs: 1000,
  ...extra,
});

async function until<T>(fn: () => T | undefined | false, timeoutMs = 3000, what = 'condition'): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Waits for I/O while timers are fake: polls on setImmediate (not faked), with a real deadline. */
async function realTime(ok: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  for (const end = performance.now() + timeoutMs; !ok(); await new Promise((r) => setImmediate(r))) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

/** A server that counts the requests it gets and never answers them. */
async function neverAnswers(): Promise<{ url: string; asked: () => number }> {
  let asked = 0;
  const s = createServer(() => void asked++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    s.closeAllConnections();
    return new Promise((r) => s.close(r));
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/health`, asked: () => asked };
}

/** Control answered in memory (no socket, no timer): no targets, so each round sends a heartbeat report. */
const inMemoryControl = ((input: string) => {
  const body = new URL(input).pathname === '/v1/probes/targets' ? { version: 1, targets: [] } : { targets: 1 };
  return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } }));
}) as typeof fetch;

const of = (results: ProbeResult[], endpoint: string) => results.filter((r) => r.endpoint === endpoint);

/** Captures log lines for assertions about what an operator would see. */
function captureLog() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines, at: (level: number) => lines.filter((l) => l.level === level) };
}

describe('probe agent', () => {
  it('reports ok results with RTT, its identity and its targets version, with the bearer token', async () => {
    const a = await sim();
    const b = await sim();
    const targets: ProbeTarget[] = [
      { endpoint: 'sg/a/127.0.1.11', check: http(`${a.base}/health`) },
      { endpoint: 'sg/b/127.0.1.12', check: http(`${b.base}/v1/models`, { bodyContains: 'llama-3-8b' }) },
    ];
    const control = await fakeControl({ version: 7, targets });
    const before = Date.now();
    const t0 = performance.now();
    agent(control.url);

    await until(() => control.results().length >= 6, 3000, 'three rounds of results');
    for (const { body } of control.reports) {
      expect(body.agent).toEqual({ id: 'probe-sg-1', region: 'sg' });
      expect(body.targets).toBe(7);
    }
    expect(new Set(control.results().map((r) => r.endpoint))).toEqual(new Set(['sg/a/127.0.1.11', 'sg/b/127.0.1.12']));
    for (const r of control.results()) {
      expect(r).toEqual({ endpoint: r.endpoint, ok: true, rttMs: expect.any(Number), at: expect.any(Number) });
      expect(r.rttMs).toBeGreaterThan(0);
      // In ms, measured within the test: no longer than the test has run, however busy the machine.
      expect(r.rttMs).toBeLessThanOrEqual(performance.now() - t0);
      expect(r.at).toBeGreaterThanOrEqual(before);
      expect(r.at).toBeLessThanOrEqual(Date.now());
    }
  });

  it('runs rounds on the interval', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'sg/a/x', check: http(`${a.base}/health`) }] });
    const probe = agent(control.url, { intervalMs: 50 });
    await until(() => control.reports.length >= 12, 3000, 'twelve reports');
    const at = control.reports.slice(1).map((r) => r.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]).sort((x, y) => x - y);
    const median = gaps[Math.floor(gaps.length / 2)];
    // Never sooner than the shortest delay (40 ms); how much later is the machine's business: the schedule
    // itself is checked on a fake clock below.
    expect(median).toBeGreaterThanOrEqual(35);
    expect(probe.stats.rounds).toBeGreaterThanOrEqual(12);
  });

  it('starts each round intervalMs × (1 ± jitter) after the one before, on its clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const random = vi.spyOn(Math, 'random').mockReturnValue(0); // 50 × (1 − 0.2) = 40 ms
    const probe = agent('http://control.invalid', { intervalMs: 50, jitter: 0.2, fetchImpl: inMemoryControl });
    await realTime(() => probe.stats.rounds === 1, 5000, 'the first round, as soon as the targets are in');
    await vi.advanceTimersByTimeAsync(39);
    expect(probe.stats.rounds).toBe(1);
    random.mockReturnValue(0.75); // drawn by round 2 for round 3: 50 × (1 + 0.2 × 0.5) = 55 ms
    await vi.advanceTimersByTimeAsync(1);
    expect(probe.stats.rounds).toBe(2);
    await vi.advanceTimersByTimeAsync(54);
    expect(probe.stats.rounds).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(probe.stats.rounds).toBe(3);
    // Every round reported (a heartbeat: no targets), one after the other.
    await realTime(() => probe.stats.reports === 3, 5000, 'three reports');
  });

  it('draws each delay from interval × (1 ± jitter)', () => {
    expect(jitteredDelay(500, 0.2, () => 0)).toBe(400);
    expect(jitteredDelay(500, 0.2, () => 0.5)).toBe(500);
    expect(jitteredDelay(500, 0.2, () => 0.999999)).toBeCloseTo(600, 2);
    expect(jitteredDelay(500, 0, () => 0)).toBe(500);
  });

  it('backs off the first targets fetch from 100 ms, doubling, to at most 2 s', () => {
    expect([0, 1, 2, 3, 4, 5, 20].map(fetchBackoffMs)).toEqual([100, 200, 400, 800, 1600, 2000, 2000]);
  });

  it('sees a crashed model server (ECONNREFUSED) from its next check on, and the other still up', async () => {
    const a = await sim();
    const b = await sim();
    const control = await fakeControl({
      version: 1,
      targets: [
        { endpoint: 'jkt/a/127.0.1.21', check: http(`${a.base}/health`) },
        { endpoint: 'jkt/b/127.0.1.22', check: http(`${b.base}/health`) },
      ],
    });
    agent(control.url, { intervalMs: 100 });
    await until(() => of(control.results(), 'jkt/a/127.0.1.21').some((r) => r.ok), 3000, 'a first ok');

    const killedAt = Date.now();
    await a.s.setFault({ kind: 'crash' }); // the listener closes at once, open connections are cut
    // Ended after the kill (1 ms for the clocks' rounding); checks of a target run one at a time.
    const after = (endpoint: string) => of(control.results(), endpoint).filter((r) => r.at > killedAt + 1);
    await until(() => after('jkt/a/127.0.1.21').length >= 3, 3000, 'three checks after the kill');
    // The first may be the check under way at the kill (done, or cut); every check started after it was refused:
    // no pooled connection hides the death, however late the rounds ran.
    const [, ...later] = after('jkt/a/127.0.1.21');
    for (const r of later) expect(r).toEqual({ endpoint: 'jkt/a/127.0.1.21', ok: false, error: `connect ECONNREFUSED 127.0.0.1:${a.port}`, at: r.at });
    await until(() => after('jkt/b/127.0.1.22').length >= 1, 3000, 'the other checked after the kill');
    expect(after('jkt/b/127.0.1.22').every((r) => r.ok)).toBe(true);
  });

  it('fails a model server that is up but has not loaded the model (status, body)', async () => {
    const warming = await sim({ warmupMs: 60_000 });
    const other = await sim({ model: 'qwen2-7b' });
    const control = await fakeControl({
      version: 1,
      targets: [
        { endpoint: 'bkk/a/1', check: http(`${warming.base}/health`) },
        { endpoint: 'bkk/b/2', check: http(`${other.base}/v1/models`, { bodyContains: '"llama-3-8b"' }) },
      ],
    });
    agent(control.url);
    await until(() => control.results().length >= 4);
    expect(of(control.results(), 'bkk/a/1')[0]).toMatchObject({ ok: false, error: 'status 503 (want 200)' });
    expect(of(control.results(), 'bkk/b/2')[0]).toMatchObject({ ok: false, error: 'body lacks "\\"llama-3-8b\\""' });
  });

  it('times out a hanging server without holding back the other targets or piling up checks', async () => {
    const hung = await sim();
    await hung.s.setFault({ kind: 'hang' });
    const fine = await sim();
    // Hangs for longer than the test: it counts what it is asked.
    const stuck = await neverAnswers();
    const control = await fakeControl({
      version: 1,
      targets: [
        { endpoint: 'mnl/a/hung', check: http(`${hung.base}/health`, { timeoutMs: 300 }) },
        { endpoint: 'mnl/b/fine', check: http(`${fine.base}/health`) },
        { endpoint: 'mnl/c/stuck', check: http(stuck.url, { timeoutMs: 60_000 }) },
      ],
    });
    const t0 = Date.now();
    agent(control.url, { intervalMs: 50 });

    await until(() => of(control.results(), 'mnl/a/hung').length >= 3, 5000, 'three timeouts');
    const timeouts = of(control.results(), 'mnl/a/hung');
    for (const r of timeouts) expect(r).toMatchObject({ ok: false, error: 'timeout after 300 ms' });
    expect(timeouts[0].at - t0).toBeGreaterThanOrEqual(290);
    // One check at a time per target: the next starts once the last has timed out, not at every 50 ms round.
    for (let i = 1; i < timeouts.length; i++) expect(timeouts[i].at - timeouts[i - 1].at).toBeGreaterThanOrEqual(290);
    // The healthy target kept being checked while the stuck one hung, which was asked once in all those rounds.
    await until(() => of(control.results(), 'mnl/b/fine').length >= 6, 5000, 'six results of the healthy target');
    expect(of(control.results(), 'mnl/b/fine').every((r) => r.ok)).toBe(true);
    expect(stuck.asked()).toBe(1);
    expect(of(control.results(), 'mnl/c/stuck')).toEqual([]);
  });

  it('reports a round after batchMs without waiting for its slow checks', async () => {
    const hung = await sim();
    await hung.s.setFault({ kind: 'hang' });
    const fine = await sim();
    const control = await fakeControl({
      version: 1,
      targets: [
        { endpoint: 'mnl/a/hung', check: http(`${hung.base}/health`, { timeoutMs: 400 }) },
        { endpoint: 'mnl/b/fine', check: http(`${fine.base}/health`) },
      ],
    });
    agent(control.url, { intervalMs: 1000, jitter: 0, batchMs: 50 });
    const slow = await until(() => control.reports.findIndex((r) => r.body.results.some((x) => x.endpoint === 'mnl/a/hung')) + 1, 3000, 'the slow result') - 1;
    // The first round's report left at batchMs, before the slow check's 400 ms timeout (timers fire in order
    // of their due time, however late): without it. The slow result is not lost: it goes with a later report.
    expect(slow).toBeGreaterThanOrEqual(1);
    expect(control.reports[0].body.results.map((r) => r.endpoint)).not.toContain('mnl/a/hung');
    expect(control.reports[slow].body.results.find((r) => r.endpoint === 'mnl/a/hung')).toMatchObject({ ok: false, error: 'timeout after 400 ms' });
    expect(control.results().some((r) => r.endpoint === 'mnl/b/fine' && r.ok)).toBe(true);
  });

  it('runs TCP checks', async () => {
    const tcp = createTcpServer((sock) => sock.end());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as AddressInfo).port;
    cleanup.push(() => new Promise((r) => tcp.close(r)));
    const control = await fakeControl({
      version: 1,
      targets: [{ endpoint: 'sg/a/tcp', check: { type: 'tcp', host: '127.0.0.1', port, timeoutMs: 500 } }],
    });
    agent(control.url);
    const ok = await until(() => control.results().find((r) => r.ok));
    expect(ok.rttMs).toBeGreaterThan(0);
    const closedAt = Date.now();
    await new Promise((r) => tcp.close(r));
    const failed = await until(() => control.results().find((r) => !r.ok && r.at >= closedAt));
    expect(failed.error).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('probes a check target shared by several endpoints once per round and applies the result to each', async () => {
    let hits = 0;
    const shared = createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((r) => shared.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => shared.close(r)));
    const url = `http://127.0.0.1:${(shared.address() as AddressInfo).port}/health`;
    const endpoints = ['sg/a/10.0.0.1', 'sg/a/10.0.0.2', 'sg/b/10.0.0.3'];
    const control = await fakeControl({ version: 1, targets: endpoints.map((endpoint) => ({ endpoint, check: http(url) })) });
    const probe = agent(control.url);
    await until(() => new Set(control.results().map((r) => r.at)).size >= 5);
    await probe.stop();

    // A report that timed out on a loaded machine is sent again: count each (endpoint, round) once.
    const results = [...new Map(control.results().map((r) => [`${r.endpoint} ${r.at}`, r])).values()];
    const observations = new Set(results.map((r) => r.at)).size;
    expect(observations).toBeGreaterThanOrEqual(5);
    expect(results.length).toBe(observations * 3);
    // One check per round for the three, not three: by the agent's count, and by the server's (a check
    // is one request; some are still unreported, or cut short, at stop).
    expect(probe.stats.checks).toBeLessThanOrEqual(probe.stats.rounds);
    expect(hits).toBeGreaterThanOrEqual(observations);
    expect(hits).toBeLessThanOrEqual(probe.stats.checks);
    for (const report of control.reports) {
      // Within a round, the three endpoints share one observation.
      const byAt = new Map<number, ProbeResult[]>();
      for (const r of report.body.results) byAt.set(r.at, [...(byAt.get(r.at) ?? []), r]);
      for (const group of byAt.values()) {
        expect(group.map((r) => r.endpoint).sort()).toEqual(endpoints);
        expect(new Set(group.map((r) => r.rttMs)).size).toBe(1);
      }
    }
  });

  it('buffers results while control fails, resends them once it answers, and logs the outage once', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'sg/a/1', check: http(`${a.base}/health`) }] });
    const { log, at } = captureLog();
    const probe = agent(control.url, { log, bufferMs: 10_000 });
    await until(() => control.reports.length >= 2);

    control.setMode('error');
    const refused = await until(() => control.refused.find((r) => r.results.length >= 6), 3000, 'a refused report of six results');
    expect(probe.stats.controlUp).toBe(false);
    const received = control.reports.length;
    control.setMode('ok');

    const resend = await until(() => control.reports[received], 2000, 'the resend');
    // The whole outage, delivered in one batch: at least all that a refused report carried (nothing is acked meanwhile).
    const key = (r: ProbeResult) => `${r.endpoint}@${r.at}`;
    expect(resend.body.results.map(key)).toEqual(expect.arrayContaining(refused.results.map(key)));
    // Oldest first, nothing delivered twice.
    const ats = control.results().map((r) => r.at);
    expect(ats).toEqual([...ats].sort((x, y) => x - y));
    expect(new Set(control.results().map(key)).size).toBe(control.results().length);
    // Taken off the buffer once control has them: what is left is the round under way, at most.
    await until(() => probe.stats.controlUp && probe.stats.buffered <= 1, 3000, 'the buffer to empty');
    expect(probe.stats.resultsDropped).toBe(0);

    const warns = at(40);
    expect(warns).toHaveLength(1);
    expect(warns[0].msg).toMatch(/control unreachable/);
    expect(warns[0].reason).toBe('POST /v1/probes/report: status 503: {"error":"control is having a bad day"}');
    expect(at(30).filter((l) => l.msg === 'control reachable again')).toHaveLength(1);
  });

  it('gives up on a control that accepts but never answers, keeps probing, and resends later', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'sg/a/1', check: http(`${a.base}/health`) }] });
    const { log, at } = captureLog();
    const probe = agent(control.url, { log, requestTimeoutMs: 100 });
    await until(() => control.reports.length >= 1);
    control.setMode('hang');
    const hungAt = Date.now();
    await until(() => probe.stats.controlErrors >= 2, 3000, 'two timed-out reports');
    expect(at(40)).toHaveLength(1);
    expect(at(40)[0].reason).toBe('POST /v1/probes/report: timeout after 100 ms');
    // Probing went on meanwhile: a report that hung carries results checked after control stopped answering.
    const during = await until(
      () => {
        const d = control.refused.flatMap((r) => r.results).filter((r) => r.at > hungAt);
        return d.length > 0 && d;
      },
      3000,
      'results checked during the hang',
    );
    control.setMode('ok');
    // …and they are sent again once control answers.
    const key = (r: ProbeResult) => `${r.endpoint}@${r.at}`;
    await until(() => during.every((r) => control.results().some((x) => key(x) === key(r))), 2000, 'the results of the outage');
  });

  it('keeps only the last bufferMs of results while control is gone (connections refused)', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'sg/a/1', check: http(`${a.base}/health`) }] });
    const { log, at } = captureLog();
    const probe = agent(control.url, { log, bufferMs: 200 });
    await until(() => control.reports.length >= 1);

    await control.down();
    await until(() => probe.stats.resultsDropped >= 8, 3000, 'old results to be dropped');
    const backAt = Date.now();
    const received = control.reports.length;
    await control.up();

    const resend = await until(() => control.reports[received], 2000, 'the resend');
    const oldest = Math.min(...resend.body.results.map((r) => r.at));
    expect(oldest).toBeGreaterThanOrEqual(backAt - 200 - 60);
    // Whatever the scheduler does: rounds start at least 40 ms apart (timers never fire early) and a target's
    // next check starts after its last one ended, so at most 6 of its results fit in 200 ms.
    expect(resend.body.results.length).toBeLessThanOrEqual(200 / 40 + 3);
    expect(resend.body.results.length).toBeGreaterThanOrEqual(1);

    await until(() => probe.stats.controlUp, 2000, 'the agent to see control back');
    expect(at(40)).toHaveLength(1);
    expect(at(40)[0].reason).toMatch(/^POST \/v1\/probes\/report: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    const recovered = at(30).find((l) => l.msg === 'control reachable again');
    expect(recovered?.dropped).toBeGreaterThanOrEqual(8);
  });

  it('re-fetches targets when a report answer names another version', async () => {
    const a = await sim();
    const b = await sim();
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'sg/a/old', check: http(`${a.base}/health`) }] });
    const probe = agent(control.url);
    await until(() => control.results().some((r) => r.endpoint === 'sg/a/old'));
    expect(control.targetFetches).toHaveLength(1);

    control.setTargets({ version: 2, targets: [{ endpoint: 'sg/b/new', check: http(`${b.base}/health`) }] });
    const firstNew = await until(() => control.reports.findIndex((r) => r.body.targets === 2) + 1, 2000, 'a version-2 report') - 1;
    expect(control.targetFetches).toHaveLength(2);
    expect(probe.stats.targetsVersion).toBe(2);
    await until(() => control.reports.length > firstNew + 3);
    const later = control.reports.slice(firstNew + 2).flatMap((r) => r.body.results);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((r) => r.endpoint === 'sg/b/new')).toBe(true);
  });

  it('retries the first targets fetch with a growing back-off until control answers', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 3, targets: [{ endpoint: 'sg/a/1', check: http(`${a.base}/health`) }] });
    control.failTargetFetches(3);
    const { log, at } = captureLog();
    const probe = agent(control.url, { log });
    await until(() => control.reports.length >= 1, 3000, 'a report');
    const f = control.targetFetches;
    expect(f).toHaveLength(4);
    const gaps = [f[1] - f[0], f[2] - f[1], f[3] - f[2]];
    expect(gaps[0]).toBeGreaterThanOrEqual(90);
    expect(gaps[1]).toBeGreaterThanOrEqual(190);
    expect(gaps[2]).toBeGreaterThanOrEqual(390);
    expect(probe.stats.targetsVersion).toBe(3);
    expect(at(40)).toHaveLength(1);
  });

  it('never crashes on a control that is absent, refuses the token, or answers nonsense', async () => {
    const nowhere = createTcpServer();
    await new Promise<void>((r) => nowhere.listen(0, '127.0.0.1', r));
    const deadUrl = `http://127.0.0.1:${(nowhere.address() as AddressInfo).port}`;
    await new Promise((r) => nowhere.close(r));
    const absent = agent(deadUrl);

    const control = await fakeControl({ version: 1, targets: [] });
    const wrongToken = agent(control.url, { token: 'nope' });

    const junk = createServer((_req, res) => res.end('{"version":"seven","targets":{}}'));
    await new Promise<void>((r) => junk.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => junk.close(r)));
    const { log, at } = captureLog();
    const confused = agent(`http://127.0.0.1:${(junk.address() as AddressInfo).port}`, { log });

    await until(() => [absent, wrongToken, confused].every((p) => p.stats.controlErrors >= 2), 3000, 'two failed fetches each');
    for (const p of [absent, wrongToken, confused]) {
      expect(p.stats.controlUp).toBe(false);
      expect(p.stats.targetsVersion).toBeUndefined();
    }
    expect(at(40)).toHaveLength(1);
    expect(at(40)[0].reason).toMatch(/^GET \/v1\/probes\/targets: bad answer at version: /);
  });

  it('sends a heartbeat report with no results when it has no targets, so it learns of new ones', async () => {
    const a = await sim();
    const control = await fakeControl({ version: 1, targets: [] });
    agent(control.url);
    await until(() => control.reports.length >= 2);
    expect(control.reports[0].body.results).toEqual([]);
    control.setTargets({ version: 2, targets: [{ endpoint: 'sg/a/1', check: http(`${a.base}/health`) }] });
    await until(() => control.results().some((r) => r.endpoint === 'sg/a/1' && r.ok), 2000, 'the new target probed');
  });

  it('stops promptly, even with a check hanging: it waits on no timer', async () => {
    const hung = await neverAnswers();
    // The agent's timers on a fake clock that never moves until after stop; sockets are real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const control = await fakeControl({ version: 1, targets: [{ endpoint: 'x/y/z', check: http(hung.url, { timeoutMs: 10_000 }) }] });
    const probe = agent(control.url);
    await realTime(() => hung.asked() === 1, 5000, 'the check to hang at the server');
    let stopped = false;
    void probe.stop().then(() => (stopped = true));
    // Neither the check's 10 s timeout nor the round's batchMs can end it: only the cancelling can.
    await realTime(() => stopped, 5000, 'stop');
    const after = { rounds: probe.stats.rounds, checks: probe.stats.checks, reports: probe.stats.reports };
    await vi.advanceTimersByTimeAsync(20_000); // whatever timer stop left behind fires now, and must do nothing
    await sleep(50);
    expect({ rounds: probe.stats.rounds, checks: probe.stats.checks, reports: probe.stats.reports }).toEqual(after);
    expect(control.reports).toEqual([]);
  });
});
