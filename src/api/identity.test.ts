// A machine credential speaks for one identity: control refuses (403, audited,
// counted) a request whose body names another, and none of it reaches control.
import { describe, expect, it } from 'vitest';
import { createTokenStore } from '../db/tokens.js';
import { createMetrics } from '../metrics/metrics.js';
import { identityOf } from '../tls/identity.js';
import { createRefusalLog } from './identity.js';
import { IDENTITIES, PROBE_AGENT, testApi } from './testing.js';

/** The API with /metrics, and a tracker that decides from the first report (no settle time). */
function setUp(opts: Parameters<typeof testApi>[0] = {}) {
  const api = testApi({ metrics: createMetrics({ defaultMetrics: false }), control: { tracker: { settleMs: 0 } }, ...opts });
  const jktTargets = api.control.targets().targets.map((t) => t.endpoint).filter((e) => e.startsWith('jkt/'));
  let at = Date.now() - 10_000;
  /** A report from `agent` that every jkt endpoint fails. */
  const jktDown = (agent: { id: string; region: string }) => ({ agent, results: jktTargets.map((endpoint) => ({ endpoint, ok: false, error: 'connect ECONNREFUSED', at: (at += 10) })) });
  /** arus_api_identity_refused_total for this role and binding, read from /metrics. */
  const refusedCount = async (role: string, binding: string) => {
    const res = await api.call('GET', '/metrics');
    expect(res.status).toBe(200);
    const line = (await res.text()).split('\n').find((l) => l.startsWith('arus_api_identity_refused_total{') && l.includes(`role="${role}"`) && l.includes(`binding="${binding}"`));
    expect(line, `${role}/${binding}`).toBeDefined();
    return Number(line!.split(' ').at(-1));
  };
  const jktHealth = () =>
    api.control
      .current()
      .snapshot.regions.filter((r) => r.id === 'jkt')
      .flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => e.health)));
  const lastAudit = () => api.audit.list({}).entries[0];
  return { ...api, jktTargets, jktDown, refusedCount, jktHealth, lastAudit };
}

describe('a probe credential reports only as its own agent', () => {
  it.each([
    { as: { id: 'bkk-2', region: 'bkk' }, binding: 'agent', error: 'the token "test-probe" speaks for agent jkt-1, not bkk-2' },
    { as: { id: 'jkt-1', region: 'bkk' }, binding: 'region', error: 'the token "test-probe" speaks for region jkt, not bkk' },
  ])('refuses a report as $as.id in $as.region (403), audits and counts it, and none of it reaches the tracker', async ({ as, binding, error }) => {
    const api = setUp();
    expect(await api.refusedCount('probe', binding)).toBe(0);
    const before = api.state();
    for (let i = 0; i < 3; i++) {
      const res = await api.call('POST', '/v1/probes/report', { token: 'probe', body: api.jktDown(as) });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ error });
    }
    expect(api.lastAudit()).toMatchObject({
      actor: 'test-probe',
      role: 'probe',
      action: 'POST /v1/probes/report',
      subject: `agent:${as.id}`,
      status: 403,
      after: { refused: error, claimed: { agent: as.id, region: as.region } },
    });
    expect(api.audit.list({}).entries).toHaveLength(3);
    expect(await api.refusedCount('probe', binding)).toBe(3);
    expect(await api.refusedCount('probe', binding === 'agent' ? 'region' : 'agent')).toBe(0);

    api.control.tick();
    expect(api.control.tracker().agents()).toEqual([]);
    expect(api.jktHealth()).toEqual(['up', 'up']);
    expect(api.store.listEvents({ kind: 'endpoint.down' })).toEqual([]);
    expect(api.state()).toBe(before);

    // The same results from the agent the token names are taken, and they are enough to fail Jakarta:
    // the refusal above is what kept it up.
    for (let i = 0; i < 2; i++) {
      const res = await api.call('POST', '/v1/probes/report', { token: 'probe', body: api.jktDown(PROBE_AGENT) });
      expect(res.status).toBe(200);
    }
    api.control.tick();
    expect(api.control.tracker().agents().map((a) => [a.id, a.region])).toEqual([['jkt-1', 'jkt']]);
    expect(api.jktHealth()).toEqual(['down', 'down']);
    expect(await api.refusedCount('probe', binding)).toBe(3);
  });

  it('binds stored tokens and certificates the same way; an admin may report for any agent', async () => {
    const api = setUp();
    const stored = createTokenStore(api.db).create({ role: 'probe', agent: 'bkk-2', region: 'bkk' }).token;
    const asJkt = await api.app.request('/v1/probes/report', { method: 'POST', headers: { authorization: `Bearer ${stored}`, 'content-type': 'application/json' }, body: JSON.stringify(api.jktDown(PROBE_AGENT)) });
    expect(asJkt.status).toBe(403);
    expect(await asJkt.json()).toEqual({ error: 'the token "bkk-2" speaks for agent bkk-2, not jkt-1' });
    const asItself = await api.app.request('/v1/probes/report', { method: 'POST', headers: { authorization: `Bearer ${stored}`, 'content-type': 'application/json' }, body: JSON.stringify(api.jktDown({ id: 'bkk-2', region: 'bkk' })) });
    expect(asItself.status).toBe(200);

    const admin = await api.call('POST', '/v1/probes/report', { body: api.jktDown({ id: 'sg-9', region: 'sg' }) });
    expect(admin.status).toBe(200);
    expect(api.control.tracker().agents().map((a) => a.id).sort()).toEqual(['bkk-2', 'sg-9']);

    const cert = setUp({ peer: () => identityOf({ subjectaltname: 'URI:spiffe://arus/probe/jkt/jkt-1', subject: {} }) });
    const forged = await cert.call('POST', '/v1/probes/report', { token: null, body: cert.jktDown({ id: 'bkk-2', region: 'bkk' }) });
    expect(forged.status).toBe(403);
    expect(await forged.json()).toEqual({ error: 'the certificate "jkt-1" speaks for agent jkt-1, not bkk-2' });
    expect(cert.lastAudit()).toMatchObject({ actor: 'jkt-1', role: 'probe', subject: 'agent:bkk-2', status: 403 });
    expect((await cert.call('POST', '/v1/probes/report', { token: null, body: cert.jktDown(PROBE_AGENT) })).status).toBe(200);
    expect(cert.control.tracker().agents().map((a) => a.id)).toEqual(['jkt-1']);
  });
});

describe("a balancer credential speaks only for its region's capacity", () => {
  const capacity = (region: string) => ({ region, balancer: `lb-${region}`, instances: 2, ready: 2, outstanding: 1, freeConcurrency: 31, queueDepth: 0 });

  it('refuses (403) capacity for another region, audited and counted; takes its own', async () => {
    const api = setUp();
    expect(IDENTITIES.balancer.region).toBe('jkt');
    const sg = await api.call('POST', '/v1/capacity', { token: 'balancer', body: capacity('sg') });
    expect(sg.status).toBe(403);
    expect(await sg.json()).toEqual({ error: 'the token "test-balancer" speaks for region jkt, not sg' });
    expect(api.lastAudit()).toMatchObject({ actor: 'test-balancer', role: 'balancer', action: 'POST /v1/capacity', subject: 'region:sg', status: 403 });
    expect(await api.refusedCount('balancer', 'region')).toBe(1);
    expect(api.control.capacity().reports).toEqual([]);

    const jkt = await api.call('POST', '/v1/capacity', { token: 'balancer', body: capacity('jkt') });
    expect(jkt.status).toBe(200);
    expect(api.control.capacity().reports.map((r) => [r.region, r.balancer])).toEqual([['jkt', 'lb-jkt']]);
    expect(await api.refusedCount('balancer', 'region')).toBe(1);
  });

  it("reads only its own region's balancer configuration", async () => {
    const api = setUp();
    const sg = await api.call('GET', '/v1/balancers/sg', { token: 'balancer' });
    expect(sg.status).toBe(403);
    expect(await sg.json()).toEqual({ error: 'the token "test-balancer" speaks for region jkt, not sg' });
    expect(await api.refusedCount('balancer', 'region')).toBe(1);
    const jkt = await api.call('GET', '/v1/balancers/jkt', { token: 'balancer' });
    expect(jkt.status).toBe(200);
    expect(await jkt.json()).toEqual(api.store.getConfig()!.regions.find((r) => r.id === 'jkt')!.balancer);
  });

  it('is the only machine role for the balancer routes: a probe token is refused', async () => {
    const api = setUp();
    const res = await api.call('POST', '/v1/capacity', { token: 'probe', body: capacity('jkt') });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('this route needs the balancer role; the token "test-probe" has probe');
    expect((await api.call('GET', '/v1/balancers/jkt', { token: 'probe' })).status).toBe(403);
    expect(api.control.capacity().reports).toEqual([]);
  });
});

describe('a dns credential reads snapshots only as its own node', () => {
  const gaps = (api: ReturnType<typeof setUp>) => api.store.listEvents({ kind: 'dns.reconnected', limit: 10 });

  it('refuses (403) a stream for another node, audited and counted, and writes no history for it', async () => {
    const api = setUp();
    const res = await api.call('GET', '/v1/snapshots/stream?node=dns-2&gapMs=5000', { token: 'dns' });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'the token "test-dns" speaks for node dns-1, not dns-2' });
    expect(api.lastAudit()).toMatchObject({ actor: 'test-dns', role: 'dns', action: 'GET /v1/snapshots/stream', subject: 'dns:dns-2', status: 403 });
    expect(await api.refusedCount('dns', 'node')).toBe(1);
    expect(gaps(api)).toEqual([]);
  });

  it('names the node after its credential when the request names none', async () => {
    const api = setUp();
    const res = await api.call('GET', '/v1/snapshots/stream?version=2&gapMs=5000', { token: 'dns' });
    expect(res.status).toBe(200);
    await res.body!.cancel();
    expect(gaps(api).map((e) => [e.subject, (e.data as { node: string }).node])).toEqual([['dns:dns-1', 'dns-1']]);
    const own = await api.call('GET', '/v1/snapshots/stream?node=dns-1', { token: 'dns' });
    expect(own.status).toBe(200);
    await own.body!.cancel();
    expect(await api.refusedCount('dns', 'node')).toBe(0);
  });
});

describe('refusals are audited up to a credential\'s rate, and every one is counted', () => {
  it('createRefusalLog: a burst of 20, then one a second, per credential', () => {
    let t = 0;
    const log = createRefusalLog({ now: () => t });
    const admitted = () => Array.from({ length: 30 }, () => log.admit('stolen')).filter(Boolean).length;
    expect(admitted()).toBe(20);
    expect(log.admit('another')).toBe(true);
    t += 1000;
    expect(admitted()).toBe(1);
    t += 5000;
    expect(admitted()).toBe(5);
  });

  it('30 forged reports from one token: 30 refused and counted, 20 audit rows', async () => {
    const api = setUp();
    const before = api.audit.list({}).entries.length;
    for (let i = 0; i < 30; i++) expect((await api.call('POST', '/v1/probes/report', { token: 'probe', body: api.jktDown({ id: `forged-${i % 10}`, region: 'jkt' }) })).status).toBe(403);
    expect(await api.refusedCount('probe', 'agent')).toBe(30);
    expect(api.audit.list({ limit: 1000 }).entries.length - before).toBe(20);
  });
});
