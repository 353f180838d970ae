// A probe agent given several replicas of control, each answered in memory
// (no socket to control; the checks are real, against a real sim): every
// report goes to every replica from its own buffer, a replica that is away
// gets what it missed when it is back, and targets come from whichever
// replica has the newest.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer } from '../sim/server.js';
import { createProbeAgent, type ProbeAgent } from './agent.js';
import { healthHandler, probeHealth } from './health.js';
import type { ProbeReport, ProbeResult, ProbeTargets } from './types.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

type Replica = { up: boolean; targets: ProbeTargets; reports: ProbeReport[]; targetFetches: number };

/** Replicas answered in memory: down ones refuse the connection, as a dead process does. */
function replicas(...initial: ProbeTargets[]) {
  const all = new Map<string, Replica>(initial.map((targets, i) => [`http://control-${i}.test:8080`, { up: true, targets, reports: [], targetFetches: 0 }]));
  const fetchImpl = async (url: string, init?: RequestInit): Promise<Response> => {
    const u = new URL(url);
    const r = all.get(u.origin);
    await Promise.resolve();
    if (!r || !r.up) throw new TypeError('fetch failed', { cause: new Error(`connect ECONNREFUSED ${u.host}`) });
    if (u.pathname === '/v1/probes/targets') {
      r.targetFetches++;
      return Response.json(r.targets);
    }
    r.reports.push(JSON.parse(init!.body as string) as ProbeReport);
    return Response.json({ targets: r.targets.version });
  };
  return { urls: [...all.keys()], at: (i: number) => [...all.values()][i], fetchImpl };
}

async function simUrl(): Promise<string> {
  const s = createSimServer({ log: silentLogger() });
  const { port } = await s.start();
  cleanup.push(() => s.stop());
  return `http://127.0.0.1:${port}/health`;
}

function agent(urls: string[], fetchImpl: typeof fetch, log = silentLogger()): ProbeAgent {
  const a = createProbeAgent({ id: 'sg-1', region: 'sg', controlUrls: urls, token: 't', intervalMs: 30, log, fetchImpl });
  a.start();
  cleanup.push(() => a.stop());
  return a;
}

async function until<T>(fn: () => T | undefined | false, what: string, ms = 5000): Promise<T> {
  for (const end = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 5))) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

const key = (r: ProbeResult) => `${r.endpoint}@${r.at}`;
const resultsOf = (r: Replica) => r.reports.flatMap((x) => x.results);

describe('probe agent with several replicas of control', () => {
  it('sends every report to every replica; one that is away gets what it missed once it is back', async () => {
    const check = { type: 'http' as const, url: await simUrl(), status: 200, timeoutMs: 1000 };
    const targets = { version: 4, targets: [{ endpoint: 'sg/a/1', check }] };
    const c = replicas(targets, targets);
    const [a, b] = [c.at(0), c.at(1)];
    b.up = false;
    const probe = agent(c.urls, c.fetchImpl as typeof fetch);

    await until(() => resultsOf(a).length >= 5, 'five results at the live replica');
    expect(b.reports).toEqual([]);
    expect(probe.stats.controlUp).toBe(true);
    expect(probe.stats.controls).toEqual([
      expect.objectContaining({ url: c.urls[0], up: true, lastReportAt: expect.any(Number) }),
      expect.objectContaining({ url: c.urls[1], up: false, reports: 0, lastReportAt: undefined }),
    ]);
    // The dead replica's buffer holds what it has not taken; the live one's is (nearly) empty.
    expect(probe.stats.controls[1].buffered).toBeGreaterThanOrEqual(5);
    const missed = resultsOf(a).map(key);

    b.up = true;
    await until(() => missed.every((k) => resultsOf(b).some((r) => key(r) === k)), 'the results b missed, resent to it');
    await until(() => probe.stats.controls.every((x) => x.up), 'both replicas up');
    // Both saw the same results, each once, oldest first.
    await until(() => resultsOf(b).length >= resultsOf(a).length - 1, 'b to catch up');
    for (const r of [a, b]) {
      const ats = resultsOf(r).map((x) => x.at);
      expect(ats).toEqual([...ats].sort((x, y) => x - y));
      expect(new Set(resultsOf(r).map(key)).size).toBe(resultsOf(r).length);
    }
    expect(probe.stats.resultsDropped).toBe(0);
  });

  it('checks the newest targets any replica gives, and never goes back to a lagging replica’s older ones', async () => {
    const [one, two] = [await simUrl(), await simUrl()];
    const older = { version: 3, targets: [{ endpoint: 'sg/a/old', check: { type: 'http' as const, url: one, status: 200, timeoutMs: 1000 } }] };
    const newer = { version: 5, targets: [{ endpoint: 'sg/a/new', check: { type: 'http' as const, url: two, status: 200, timeoutMs: 1000 } }] };
    const c = replicas(older, older);
    const [lagging, leading] = [c.at(0), c.at(1)];
    const probe = agent(c.urls, c.fetchImpl as typeof fetch);
    await until(() => probe.stats.targetsVersion === 3 && probe.stats.reports >= 2, 'version 3 in use');

    // The second replica moves on: its next report answer names 5, and the agent fetches from it.
    leading.targets = newer;
    await until(() => probe.stats.targetsVersion === 5, 'version 5 taken');
    const fetchedFromLagging = lagging.targetFetches;
    const since = lagging.reports.length;
    await until(() => lagging.reports.length >= since + 5, 'five more reports to the lagging replica');
    // The lagging one keeps answering 3: nothing is fetched from it, and only the new target is checked.
    expect(lagging.targetFetches).toBe(fetchedFromLagging);
    expect(probe.stats.targetsVersion).toBe(5);
    const late = lagging.reports.slice(since + 2).flatMap((r) => r.results);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((r) => r.endpoint === 'sg/a/new')).toBe(true);
    expect(lagging.reports.slice(since + 2).every((r) => r.targets === 5)).toBe(true);
  });

  it('starts its rounds from whichever replica answers first, warning once about the one that does not', async () => {
    const lines: { level: number; msg: string; control?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const c = replicas({ version: 1, targets: [] }, { version: 1, targets: [] });
    c.at(0).up = false;
    const probe = agent(c.urls, c.fetchImpl as typeof fetch, log);
    await until(() => c.at(1).reports.length >= 3, 'heartbeats to the live replica');
    expect(probe.stats.targetsVersion).toBe(1);
    expect(lines.filter((l) => l.level === 40)).toEqual([expect.objectContaining({ msg: expect.stringMatching(/control unreachable/), control: c.urls[0] })]);
  });
});

describe("probe agent's /healthz", () => {
  it('answers 200 with each replica, its last report and the rounds, and 404 elsewhere', async () => {
    const c = replicas({ version: 2, targets: [] }, { version: 2, targets: [] });
    c.at(1).up = false;
    const probe = agent(c.urls, c.fetchImpl as typeof fetch);
    await until(() => probe.stats.reports >= 2 && probe.stats.controlErrors >= 1, 'a report and a failure');
    const handle = healthHandler(() => probeHealth({ id: 'sg-1', region: 'sg' }, probe.stats));
    const res = handle(new Request('http://127.0.0.1:9154/healthz'));
    expect(res.status).toBe(200);
    const body = (await res.json()) as ReturnType<typeof probeHealth>;
    expect(body).toMatchObject({ ok: true, agent: { id: 'sg-1', region: 'sg' }, controlUp: true, targetsVersion: 2 });
    expect(body.rounds).toBeGreaterThanOrEqual(2);
    expect(body.controls).toEqual([
      { url: c.urls[0], up: true, lastReportAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      { url: c.urls[1], up: false, lastReportAt: null },
    ]);
    expect(handle(new Request('http://127.0.0.1:9154/health')).status).toBe(404);
    expect(handle(new Request('http://127.0.0.1:9154/healthz', { method: 'POST' })).status).toBe(405);
  });
});
