// The forged-quorum attack, black box: `arus control`, four real `arus probe`
// agents (one per region, each with a token bound to itself) checking
// simulated model servers, and an `arus dns` node on control's stream. One
// agent's token is stolen, and its thief reports as ten invented agents, all
// saying Jakarta's endpoints are down, at the rate real agents report. Ten
// against four would be a majority, if control believed the names in the
// bodies: it believes the token, refuses every report (403, counted, audited),
// and Jakarta stays in the answers. The same reports under a credential that
// may speak for any agent (admin's) do move Indonesia: the attack is a real one.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { REGION_IDS, regionsWithChecks, startZoneSims } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'forged-admin-token';
const JKT = ['127.0.1.21', '127.0.1.22'];
/** Invented agents, and how often each reports: a real agent's round (500 ms). */
const FORGED = 10;
const EVERY_MS = 500;
const ATTACK_MS = 6000;

type Event = { time: number; kind: string; subject: string; oldState: string; newState: string };
type Health = { regions: { zones: { endpoints: { address: string; state: string }[] }[] }[]; agents: { id: string; fresh: boolean }[] };

describe.skipIf(!requireDig)('the forged-quorum attack: one stolen probe token reporting as ten invented agents', () => {
  const procs: Running[] = [];
  let sims: Map<string, SimServer>;
  let control: Running;
  let dns: Running;
  const agentTokens = new Map<string, string>();

  const api = async (path: string, token = ADMIN, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`${control.api}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return { status: res.status, body: await res.json() };
  };
  const indonesia = async () =>
    (await digAsync('127.0.0.1', dns.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])).answers
      .filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const eventsSince = async (since: number) => ((await api(`/v1/events?since=${since}&limit=1000`)).body as { events: Event[] }).events;
  const endpointStates = (h: Health) => h.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => e.state)));
  const healthy = (h: Health) => h.agents.filter((a) => a.fresh).length === 4 && endpointStates(h).every((s) => s === 'up');

  /**
   * Ten invented agents, each sending a report every EVERY_MS for `ms`, all
   * saying Jakarta's endpoints fail, with `token`. Returns how many were sent
   * and the statuses control answered. DNS is asked every 250 ms meanwhile.
   */
  async function attack(token: string, ms: number, stopWhen?: (answer: string[]) => boolean) {
    const targets = ((await api('/v1/probes/targets', token)).body as { targets: { endpoint: string }[] }).targets;
    const jkt = targets.filter((t) => t.endpoint.startsWith('jkt/')).map((t) => t.endpoint);
    expect(jkt).toHaveLength(2);
    const statuses: Record<number, number> = {};
    const answers: { at: number; answer: string[] }[] = [];
    let sent = 0;
    let done = false;
    const t0 = Date.now();
    const end = t0 + ms;
    const agents = Array.from({ length: FORGED }, async (_, i) => {
      const agent = { id: `forged-${i}`, region: REGION_IDS[i % REGION_IDS.length] };
      // Spread over the round, as independent agents would be.
      await new Promise((r) => setTimeout(r, (i * EVERY_MS) / FORGED));
      while (!done && Date.now() < end) {
        const started = Date.now();
        const body = { agent, targets: targets.length, results: jkt.map((endpoint) => ({ endpoint, ok: false, error: 'connect ECONNREFUSED', at: started })) };
        sent++;
        const res = await api('/v1/probes/report', token, { method: 'POST', body });
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, Math.max(0, EVERY_MS - (Date.now() - started))));
      }
    });
    const asking = (async () => {
      while (!done && Date.now() < end) {
        const answer = await indonesia();
        answers.push({ at: Date.now() - t0, answer });
        if (stopWhen?.(answer)) done = true;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    await Promise.all([...agents, asking]);
    return { sent, statuses, answers, ms: Date.now() - t0 };
  }

  beforeAll(async () => {
    sims = await startZoneSims();
    const dir = tempDir('arus-forged-');
    const db = join(dir, 'arus.db');
    const regions = regionsWithChecks(dir, (zone) => sims.get(zone)!.port);
    for (const r of REGION_IDS) agentTokens.set(r, createToken(db, { role: 'probe', name: `probe-${r}`, agent: `probe-${r}`, region: r }));
    const dnsToken = createToken(db, { role: 'dns', node: 'dns-1' });
    control = await startArus(['control', '--db', db, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env: { ARUS_ADMIN_TOKEN: ADMIN }, timeoutMs: 30_000 });
    procs.push(control);
    const started = await Promise.all([
      ...REGION_IDS.map((r) => startArus(['probe', '--control', control.api!, '--token', agentTokens.get(r)!], { timeoutMs: 30_000 })),
      startArus(['dns', '--control', control.api!, '--token', dnsToken, '--snapshot', join(dir, 'dns', 'snapshot.json'), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], { timeoutMs: 30_000 }),
    ]);
    procs.push(...started);
    dns = started.at(-1)!;
    await until(async () => (await api('/v1/health')).body as Health, healthy, 20_000, 200);
    await until(indonesia, (a) => a.join() === JKT.join(), 10_000, 100);
  }, 90_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await Promise.all([...(sims?.values() ?? [])].map((s) => s.stop()));
  });

  it("keeps Jakarta in the answers, records no failover, and counts every forged report in /metrics", { timeout: 60_000 }, async () => {
    const since = Date.now();
    // The thief holds Jakarta's agent's token: a real, live credential.
    const stolen = agentTokens.get('jkt')!;
    const { sent, statuses, answers, ms } = await attack(stolen, ATTACK_MS);
    console.log(`forged quorum: ${sent} reports as ${FORGED} invented agents over ${ms} ms: ${JSON.stringify(statuses)}; ${answers.length} DNS answers, ${answers.filter((a) => a.answer.join() !== JKT.join()).length} not Jakarta`);
    expect(ms).toBeGreaterThanOrEqual(ATTACK_MS);
    expect(sent).toBeGreaterThanOrEqual(5 * FORGED * (1000 / EVERY_MS));
    expect(statuses).toEqual({ 403: sent });
    expect(answers.length).toBeGreaterThanOrEqual(10);
    expect(answers.filter((a) => a.answer.join() !== JKT.join())).toEqual([]);
    // Past the last report by more than the rise/fall window: still Jakarta.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await indonesia()).toEqual(JKT);

    const events = await eventsSince(since);
    expect(events.filter((e) => /^fail(over|back)$|^(endpoint|zone|region)\.down$/.test(e.kind))).toEqual([]);
    expect(events.filter((e) => e.kind === 'agent.joined')).toEqual([]);
    const agents = ((await api('/v1/probes')).body as { agents: { id: string }[] }).agents.map((a) => a.id).sort();
    expect(agents).toEqual(REGION_IDS.map((r) => `probe-${r}`).sort());
    expect(healthy((await api('/v1/health')).body as Health)).toBe(true);

    const metrics = await (await fetch(`${control.api}/metrics`)).text();
    expect(Number(/^arus_api_identity_refused_total\{role="probe",binding="agent"\} (\d+)$/m.exec(metrics)?.[1])).toBe(sent);
    expect(Number(/^arus_api_identity_refused_total\{role="probe",binding="region"\} (\d+)$/m.exec(metrics)?.[1])).toBe(0);
    const audit = (await api(`/v1/audit?actor=probe-jkt&since=${since}&limit=1000`)).body as { entries: { status: number; subject: string }[] };
    // Each refusal is counted; audited up to the credential's rate (20 at once, then one a second), so a stolen
    // credential cannot turn its flood into a database write per request.
    const refused = audit.entries.filter((e) => e.status === 403);
    expect(refused.length).toBeGreaterThanOrEqual(20);
    expect(refused.length).toBeLessThanOrEqual(20 + Math.ceil(ms / 1000) + 1);
    expect(refused.length).toBeLessThan(sent);
    expect(new Set(audit.entries.map((e) => e.subject))).toEqual(new Set(Array.from({ length: FORGED }, (_, i) => `agent:forged-${i}`)));
    // The real agent whose token was stolen still reports, and is still counted.
    const fresh = ((await api('/v1/health')).body as Health).agents.find((a) => a.id === 'probe-jkt');
    expect(fresh).toMatchObject({ fresh: true });
  });

  it('the same reports under a credential allowed to speak for any agent (admin) do move Indonesia: the attack is real', { timeout: 60_000 }, async () => {
    const since = Date.now();
    const { sent, statuses, answers } = await attack(ADMIN, 20_000, (a) => a.length > 0 && !a.some((x) => JKT.includes(x)));
    const moved = answers.find((a) => a.answer.length > 0 && !a.answer.some((x) => JKT.includes(x)));
    console.log(`the same attack, believed: Indonesia left Jakarta ${moved?.at} ms after the first forged report (${sent} reports: ${JSON.stringify(statuses)})`);
    expect(statuses[200]).toBeGreaterThan(0);
    expect(moved).toBeDefined();
    expect((await eventsSince(since)).map((e) => e.kind)).toContain('failover');
  });
});
