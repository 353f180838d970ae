import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { bigConfig, defaultConfig, ecsOf, query, servingState, type QuerySpec } from '../dns/fixtures.js';
import { createResponder, type Responder } from '../dns/responder.js';
import { DECISION_BUCKETS, timeDecision } from '../dns/responder-stats.js';
import { silentLogger } from '../log.js';
import { UNMATCHED_ROUTE } from './api-metrics.js';
import { MAX_AGENT_REGIONS, type RegionState } from './control-metrics.js';
import { createMetrics } from './metrics.js';

type Sample = { name: string; labels: Record<string, string>; value: number };

// The Prometheus text format (0.0.4): a sample line, and the two comment lines we emit. Prometheus
// reads values with Go's ParseFloat, where NaN and Inf are case-insensitive (prom-client writes `Nan`).
const LABEL = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"`;
const NUMBER = String.raw`(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[Nn][Aa][Nn]|[-+]?[Ii][Nn][Ff])`;
const SAMPLE_LINE = new RegExp(String.raw`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:${LABEL})(?:,${LABEL})*,?)?\})? (${NUMBER})(?: -?\d+)?$`);
const HELP_LINE = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;

/** Parses the exposition strictly: every line must be a sample, HELP, TYPE or blank; every sample's family typed first. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || HELP_LINE.test(line)) continue;
    const type = TYPE_LINE.exec(line);
    if (type) {
      expect(types.has(type[1]), `${type[1]} typed twice`).toBe(false);
      types.set(type[1], type[2]);
      continue;
    }
    const m = SAMPLE_LINE.exec(line);
    expect(m, `not a Prometheus sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, rawLabels = '', value] = m!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `${name} has no # TYPE before it`).toBe(true);
    const labels = Object.fromEntries([...rawLabels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    samples.push({ name, labels, value: Number(value) });
  }
  return { samples, types };
}

async function scrape(metrics: ReturnType<typeof createMetrics>) {
  const { samples, types } = parse(await metrics.text());
  /** The value of the one sample with this name and these labels (exactly); undefined if none. */
  const value = (name: string, labels: Record<string, string> = {}) => {
    const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
    expect(found.length).toBeLessThanOrEqual(1);
    return found[0]?.value;
  };
  /** label value → sample value, for every sample of this name. */
  const by = (name: string, label: string) => Object.fromEntries(samples.filter((s) => s.name === name).map((s) => [s.labels[label], s.value]));
  return { samples, types, value, by };
}

const RESOLVER = { address: '127.0.0.1', family: 'IPv4' };
function ask(r: Responder, spec: QuerySpec, times = 1, transport: 'udp' | 'tcp' = 'udp') {
  for (let i = 0; i < times; i++) r(query(spec), RESOLVER, transport);
}
const api = (cidr?: string, type = 1): QuerySpec => ({ name: 'api.gslb.example.com', type, opt: cidr ? { options: [ecsOf(cidr)] } : undefined });

describe('metrics: the DNS responder', () => {
  const responder = () => createResponder({ getState: ((s) => () => s)(servingState(defaultConfig(), 1)), log: silentLogger() });

  it('counts queries by rcode, QTYPE and chosen region from a real responder answering real packets', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const r = responder();
    metrics.observeResponder(r);
    ask(r, api('36.66.0.0/24'), 3); // Jakarta
    ask(r, api('171.96.0.0/16', 28), 2); // Bangkok, AAAA
    ask(r, api()); // resolver without a location: Singapore
    ask(r, { name: 'mnl.api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }); // pinned: Manila
    ask(r, { name: 'gslb.example.com', type: 2 });
    ask(r, { name: 'gslb.example.com', type: 6 }, 2);
    ask(r, { name: 'api.gslb.example.com', type: 255 });
    ask(r, { name: 'api.gslb.example.com', type: 16 }); // NODATA, TXT
    ask(r, { name: 'nope.gslb.example.com', type: 1 }); // NXDOMAIN
    ask(r, { name: 'example.org', type: 1 }); // REFUSED
    r(query({ tail: [0] }), RESOLVER, 'udp'); // FORMERR
    r(query({ flags: 4 << 11 }), RESOLVER, 'udp'); // NOTIMP
    r(query({ opt: { version: 1 } }), RESOLVER, 'udp'); // BADVERS
    r(Buffer.from([1, 2, 3]), RESOLVER, 'udp'); // dropped

    const m = await scrape(metrics);
    expect(m.types.get('arus_dns_queries_total')).toBe('counter');
    expect(m.by('arus_dns_queries_total', 'rcode')).toEqual({ NOERROR: 12, NXDOMAIN: 1, REFUSED: 1, FORMERR: 1, NOTIMP: 1, BADVERS: 1, SERVFAIL: 0 });
    expect(m.by('arus_dns_queries_by_type_total', 'qtype')).toEqual({ A: 7, AAAA: 2, NS: 1, SOA: 2, ANY: 1, CNAME: 0, MX: 0, TXT: 1, SRV: 0, CAA: 0, other: 0 });
    expect(m.by('arus_dns_answers_total', 'region')).toEqual({ jkt: 3, bkk: 2, sg: 1, mnl: 1 });
    expect(m.value('arus_dns_dropped_total')).toBe(1);
    expect(m.value('arus_dns_truncated_total')).toBe(0);
    expect(m.value('arus_dns_errors_total')).toBe(0);
    expect(m.value('arus_dns_empty_answers_total')).toBe(0);
  });

  it('exposes steer() time as a histogram: cumulative buckets at the responder bounds, +Inf = _count = steer() calls, _sum in seconds', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const r = responder();
    metrics.observeResponder(r);
    for (const cidr of ['36.66.0.0/24', '165.21.0.0/16', '171.96.0.0/16', '112.198.0.0/16']) ask(r, api(cidr), 2);
    const m = await scrape(metrics);
    expect(m.types.get('arus_dns_decision_seconds')).toBe('histogram');
    const buckets = m.samples.filter((s) => s.name === 'arus_dns_decision_seconds_bucket');
    expect(buckets.map((b) => b.labels.le)).toEqual([...DECISION_BUCKETS.map(String), '+Inf']);
    const counts = buckets.map((b) => b.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b)); // cumulative
    const calls = r.stats.steerCalls;
    expect(calls).toBeGreaterThan(4);
    expect(counts.at(-1)).toBe(calls);
    expect(m.value('arus_dns_decision_seconds_count')).toBe(calls);
    // Each bucket is the responder's counts up to that bound.
    let cumulative = 0;
    r.stats.decisionBuckets.forEach((n, i) => expect(counts[i]).toBe((cumulative += n)));
    // How long steer() took is the machine's business; that _sum is the responder's total is ours.
    const sum = m.value('arus_dns_decision_seconds_sum');
    expect(sum).toBeCloseTo(r.stats.decisionSeconds, 12);
    expect(sum).toBeGreaterThan(0);
  });

  it('puts steer() times in seconds into their buckets: known durations, exact exposition', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const r = responder();
    metrics.observeResponder(r);
    // The responder times each steer() call with timeDecision(ms); these stand for four calls.
    for (const ms of [0.004, 0.02, 0.02, 250]) timeDecision(r.stats, ms);
    const m = await scrape(metrics);
    const bucket = (le: string) => m.value('arus_dns_decision_seconds_bucket', { le });
    expect([bucket('0.000005'), bucket('0.00001'), bucket('0.000025'), bucket('0.1'), bucket('+Inf')]).toEqual([1, 1, 3, 3, 4]);
    expect(m.value('arus_dns_decision_seconds_count')).toBe(4);
    expect(m.value('arus_dns_decision_seconds_sum')).toBeCloseTo(0.250044, 12);
  });

  it('reads the counters at every scrape, without double counting, and sums several responders', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const a = responder();
    const b = createResponder({ getState: ((s) => () => s)(servingState(bigConfig(), 1)), log: silentLogger() });
    metrics.observeResponder(a);
    metrics.observeResponder(b);
    metrics.observeResponder(a); // once is enough
    ask(a, api('36.66.0.0/24'), 2);
    ask(b, api('36.66.0.0/24'), 1);
    ask(b, { name: 'bulk.gslb.example.com', type: 1 }); // too big for 512 octets: TC
    ask(b, { name: 'bulk.gslb.example.com', type: 1 }, 1, 'tcp');
    let m = await scrape(metrics);
    expect(m.by('arus_dns_answers_total', 'region')).toEqual({ sg: 0, jkt: 3, bkk: 0, mnl: 0, hcm: 2 });
    expect(m.value('arus_dns_truncated_total')).toBe(1);
    expect(m.value('arus_dns_queries_total', { rcode: 'NOERROR' })).toBe(5);
    expect(m.value('arus_dns_decision_seconds_count')).toBe(a.stats.steerCalls + b.stats.steerCalls);
    m = await scrape(metrics);
    expect(m.value('arus_dns_queries_total', { rcode: 'NOERROR' })).toBe(5);
    ask(a, api('36.66.0.0/24'), 4);
    m = await scrape(metrics);
    expect(m.value('arus_dns_queries_total', { rcode: 'NOERROR' })).toBe(9);
    expect(m.value('arus_dns_answers_total', { region: 'jkt' })).toBe(7);
  });

  it('counts fail-closed answers with no address', async () => {
    const config = defaultConfig();
    const closed = {
      zone: { ...config.zone, services: config.zone.services.map((s) => ({ ...s, failMode: 'closed' as const })) },
      regions: config.regions.map((region) => ({ ...region, down: true })),
    };
    const metrics = createMetrics({ defaultMetrics: false });
    const r = createResponder({ getState: ((s) => () => s)(servingState(closed, 1)), log: silentLogger() });
    metrics.observeResponder(r);
    ask(r, api('36.66.0.0/24'), 3);
    const m = await scrape(metrics);
    expect(m.value('arus_dns_empty_answers_total')).toBe(3);
    expect(m.value('arus_dns_answers_total', { region: 'jkt' })).toBe(0);
  });
});

describe('metrics: events and probes', () => {
  it('recordEvent counts every kind, and failover and failback as failovers too (both listed from the start)', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    expect((await scrape(metrics)).by('arus_failovers_total', 'kind')).toEqual({ failover: 0, failback: 0 });
    for (const kind of ['failover', 'failover', 'failback', 'endpoint.down', 'drain', 'endpoint.down']) metrics.recordEvent(kind);
    const m = await scrape(metrics);
    expect(m.by('arus_failovers_total', 'kind')).toEqual({ failover: 2, failback: 1 });
    expect(m.by('arus_events_total', 'kind')).toEqual({ failover: 2, failback: 1, 'endpoint.down': 2, drain: 1 });
  });

  it('recordProbeResults counts ok and failed results by the agent\'s region', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.recordProbeResults([{ ok: true, endpoint: 'sg/sg-a/203.0.113.11' }, { ok: false, endpoint: 'jkt/jkt-a/203.0.113.21' }, { ok: true, endpoint: 'jkt/jkt-b/203.0.113.22' }], 'sg');
    metrics.recordProbeResults([{ ok: false, endpoint: 'sg/sg-a/203.0.113.11' }], 'jkt');
    metrics.recordProbeResults([], 'bkk');
    const m = await scrape(metrics);
    expect(m.value('arus_probe_results_total', { agent_region: 'sg', result: 'ok' })).toBe(2);
    expect(m.value('arus_probe_results_total', { agent_region: 'sg', result: 'fail' })).toBe(1);
    expect(m.value('arus_probe_results_total', { agent_region: 'jkt', result: 'ok' })).toBe(0);
    expect(m.value('arus_probe_results_total', { agent_region: 'jkt', result: 'fail' })).toBe(1);
    expect(m.samples.filter((s) => s.name === 'arus_probe_results_total' && !['sg', 'jkt', 'bkk'].includes(s.labels.agent_region))).toEqual([]);
  });

  it('keeps at most MAX_AGENT_REGIONS agent regions (the agent says which), the rest as other', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    for (let i = 0; i < MAX_AGENT_REGIONS + 10; i++) metrics.recordProbeResults([{ ok: true, endpoint: 'x' }], `r${i}`);
    metrics.recordProbeResults([{ ok: false, endpoint: 'x' }], 'r0');
    const m = await scrape(metrics);
    const regions = new Set(m.samples.filter((s) => s.name === 'arus_probe_results_total').map((s) => s.labels.agent_region));
    expect(regions.size).toBe(MAX_AGENT_REGIONS + 1);
    expect(m.value('arus_probe_results_total', { agent_region: 'other', result: 'ok' })).toBe(10);
    expect(m.value('arus_probe_results_total', { agent_region: 'r0', result: 'fail' })).toBe(1);
  });
});

describe('metrics: API requests', () => {
  function app() {
    const metrics = createMetrics({ defaultMetrics: false });
    const a = new Hono();
    a.use('*', metrics.apiMiddleware);
    a.use('/secret/*', async (c, next) => (c.req.header('authorization') ? next() : c.json({ error: 'no token' }, 401)));
    a.get('/v1/regions/:id', (c) => c.json({ id: c.req.param('id') }));
    a.put('/v1/regions/:id', (c) => c.json({ id: c.req.param('id') }, 201));
    a.get('/secret/:name', (c) => c.text(c.req.param('name')));
    a.get('/boom', () => {
      throw new Error('boom');
    });
    const sub = new Hono();
    sub.get('/events/:id', (c) => c.text('ok'));
    a.route('/v2', sub);
    a.notFound((c) => c.json({ error: 'not found' }, 404));
    a.onError((_, c) => c.json({ error: 'internal' }, 500));
    return { a, metrics };
  }

  it('labels requests by method, route pattern (not the path) and status, with a duration histogram', async () => {
    const { a, metrics } = app();
    for (const id of ['sg', 'jkt', 'bkk']) expect((await a.request(`/v1/regions/${id}`)).status).toBe(200);
    expect((await a.request('/v1/regions/sg', { method: 'PUT' })).status).toBe(201);
    expect((await a.request('/secret/x')).status).toBe(401); // answered by middleware: still the route it was for
    expect((await a.request('/secret/y', { headers: { authorization: 'Bearer t' } })).status).toBe(200);
    expect((await a.request('/v2/events/17')).status).toBe(200);
    expect((await a.request('/boom')).status).toBe(500);
    expect((await a.request('/nope/123')).status).toBe(404);
    expect((await a.request('/v1/regions/sg', { method: 'DELETE' })).status).toBe(404);
    expect((await a.request('/v1/regions/sg', { method: 'BREW' })).status).toBe(404);

    const m = await scrape(metrics);
    const requests = m.samples.filter((s) => s.name === 'arus_api_requests_total').map((s) => `${s.labels.method} ${s.labels.route} ${s.labels.status} ${s.value}`);
    expect(requests.sort()).toEqual(
      [
        'GET /v1/regions/:id 200 3',
        'PUT /v1/regions/:id 201 1',
        'GET /secret/:name 401 1',
        'GET /secret/:name 200 1',
        'GET /v2/events/:id 200 1',
        'GET /boom 500 1',
        `GET ${UNMATCHED_ROUTE} 404 1`,
        `DELETE ${UNMATCHED_ROUTE} 404 1`,
        `other ${UNMATCHED_ROUTE} 404 1`,
      ].sort(),
    );
    expect(m.types.get('arus_api_request_seconds')).toBe('histogram');
    expect(m.value('arus_api_request_seconds_count', { method: 'GET', route: '/v1/regions/:id' })).toBe(3);
    expect(m.value('arus_api_request_seconds_bucket', { method: 'GET', route: '/v1/regions/:id', le: '+Inf' })).toBe(3);
    expect(m.value('arus_api_request_seconds_sum', { method: 'GET', route: '/v1/regions/:id' })).toBeGreaterThan(0);
    expect(m.samples.some((s) => s.labels.route?.includes('sg') || s.labels.route?.includes('17'))).toBe(false);
  });
});

describe('metrics: the exposition', () => {
  it('every line is valid Prometheus text, with the default process metrics on the same registry', async () => {
    const metrics = createMetrics();
    const r = createResponder({ getState: ((s) => () => s)(servingState(defaultConfig(), 1)), log: silentLogger() });
    metrics.observeResponder(r);
    ask(r, api('36.66.0.0/24'));
    metrics.recordEvent('failover');
    metrics.recordProbeResults([{ ok: true, endpoint: 'x' }], 'sg');
    const app = new Hono();
    app.use('*', metrics.apiMiddleware);
    app.get('/x', (c) => c.text('x'));
    await app.request('/x');
    expect(metrics.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = await scrape(metrics);
    for (const name of [
      'arus_dns_queries_total',
      'arus_dns_queries_by_type_total',
      'arus_dns_answers_total',
      'arus_dns_truncated_total',
      'arus_dns_decision_seconds',
      'arus_failovers_total',
      'arus_events_total',
      'arus_probe_results_total',
      'arus_api_requests_total',
      'arus_api_request_seconds',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ])
      expect(m.types.has(name), name).toBe(true);
    for (const [name, type] of m.types) if (type === 'counter' && name.startsWith('arus_')) expect(name).toMatch(/_total$/);
  });

  it('takes a prefix', async () => {
    const metrics = createMetrics({ prefix: 'gslb_', defaultMetrics: false });
    const m = await scrape(metrics);
    expect(m.types.has('gslb_dns_queries_total')).toBe(true);
    expect([...m.types.keys()].filter((n) => !n.startsWith('gslb_'))).toEqual([]);
  });

  it('the parser used here rejects what is not Prometheus text', () => {
    expect(() => parse('# TYPE a counter\na{b="c} 1')).toThrow();
    expect(() => parse('# TYPE a counter\na 1 2 3')).toThrow();
    expect(() => parse('b 1')).toThrow(); // untyped family
    expect(parse('# HELP a x\n# TYPE a counter\na{b="c\\"d"} 1.5e3\n').samples).toEqual([{ name: 'a', labels: { b: 'c\\"d' }, value: 1500 }]);
  });
});

describe('metrics: region state', () => {
  it('reads each region’s state at scrape time, one-hot over up, degraded and down', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const states = new Map<string, RegionState>([
      ['sg', 'up'],
      ['jkt', 'down'],
    ]);
    metrics.observeRegions(() => states);
    const value = async (region: string, state: string) =>
      parse(await metrics.text()).samples.find((s) => s.name === 'arus_region_state' && s.labels.region === region && s.labels.state === state)?.value;
    expect(await value('sg', 'up')).toBe(1);
    expect(await value('sg', 'down')).toBe(0);
    expect(await value('jkt', 'down')).toBe(1);
    expect(await value('jkt', 'up')).toBe(0);
    states.set('jkt', 'degraded').delete('sg');
    expect(await value('jkt', 'degraded')).toBe(1);
    expect(await value('jkt', 'down')).toBe(0);
    expect(await value('sg', 'up')).toBeUndefined(); // a region removed from the configuration is gone
  });
});
