// Hostname endpoints' names followed through a real resolver on a loopback
// socket (a dns2 server that answers as the test says), and the snapshot
// that results: a CNAME endpoint answered as a CNAME, a flattened one with its
// resolved addresses, an unresolvable one down so that its region fails over.
import dns2, { Packet } from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildSnapshot } from '../snapshot/snapshot.js';
import { steer, seededRandom } from '../steer/steer.js';
import { defaultConfig } from '../dns/fixtures.js';
import { createHostnameFollower, createLookup } from './hostnames.js';

const log = pino({ level: 'silent' });
/** What the test resolver answers: name → A addresses (absent: NXDOMAIN; 'fail': no reply). */
const zone = new Map<string, string[] | 'fail'>();

describe('hostname endpoints', () => {
  let server: ReturnType<typeof dns2.createUDPServer>;
  let port = 0;
  beforeAll(async () => {
    server = dns2.createUDPServer((request, send) => {
      const q = request.questions[0];
      const res = Packet.createResponseFromRequest(request);
      const data = zone.get(q.name.toLowerCase());
      if (data === 'fail') return;
      if (data === undefined) res.header.rcode = 3;
      else if (q.type === Packet.TYPE.A) for (const address of data) res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 5, address } as (typeof res.answers)[number]);
      void send(res);
    });
    await server.listen(0, '127.0.0.1');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => server.close());

  it('looks names up through the configured resolver: addresses with their TTL, NXDOMAIN and NODATA definitive, a silent resolver not', async () => {
    const lookup = createLookup([`127.0.0.1:${port}`]);
    zone.set('alb-1.elb.test', ['192.0.2.10', '192.0.2.11']);
    zone.set('empty.elb.test', []);
    zone.set('dead.elb.test', 'fail');
    expect(await lookup('alb-1.elb.test')).toEqual({ addresses: ['192.0.2.10', '192.0.2.11'], ttl: 5 });
    expect(await lookup('gone.elb.test')).toMatchObject({ error: expect.stringContaining('NXDOMAIN'), definitive: true });
    expect(await lookup('empty.elb.test')).toMatchObject({ error: expect.stringContaining('no A or AAAA'), definitive: true });
    expect(await lookup('dead.elb.test')).toMatchObject({ definitive: false });
  }, 20_000);

  it('follows a change of the addresses, and a name that stops resolving, each telling once', async () => {
    let t = 0;
    const changes: string[] = [];
    zone.set('alb-2.elb.test', ['192.0.2.20']);
    const f = createHostnameFollower({ lookup: createLookup([`127.0.0.1:${port}`]), mono: () => t, onChange: (why) => changes.push(why), log });
    f.follow(['alb-2.elb.test']);
    await f.poll();
    expect(f.resolved()['alb-2.elb.test']).toEqual({ addresses: ['192.0.2.20'], ttl: 5 });
    zone.set('alb-2.elb.test', ['192.0.2.21']);
    t = 3000; // before 3/4 of the 5 s TTL: not asked again yet
    await f.poll();
    expect(f.resolved()['alb-2.elb.test']).toEqual({ addresses: ['192.0.2.20'], ttl: 5 });
    t = 3800; // past it: asked again, ahead of expiry
    await f.poll();
    expect(f.resolved()['alb-2.elb.test']).toEqual({ addresses: ['192.0.2.21'], ttl: 5 });
    t = 8000;
    await f.poll(); // the same answer: no change told
    zone.delete('alb-2.elb.test');
    t = 20_000;
    await f.poll();
    expect(f.resolved()['alb-2.elb.test']).toMatchObject({ error: expect.stringContaining('NXDOMAIN') });
    expect(changes.map((c) => c.split(':')[0])).toEqual(['hostname resolves', 'hostname re-resolved', 'hostname does not resolve']);
  }, 20_000);

  it('keeps the last addresses through a failing resolver for the stale window, then calls the name unresolvable', async () => {
    let t = 0;
    zone.set('alb-3.elb.test', ['192.0.2.30']);
    const f = createHostnameFollower({ lookup: createLookup([`127.0.0.1:${port}`]), mono: () => t, onChange: () => undefined, log });
    f.follow(['alb-3.elb.test']);
    await f.poll();
    zone.set('alb-3.elb.test', 'fail');
    t = 10_000; // expired 5 s ago, within the stale window
    await f.poll();
    expect(f.resolved()['alb-3.elb.test']).toEqual({ addresses: ['192.0.2.30'], ttl: 5 });
    t = 40_000; // 35 s past expiry
    await f.poll();
    expect(f.resolved()['alb-3.elb.test']).toMatchObject({ error: expect.any(String) });
  }, 30_000);

  it('answers a CNAME endpoint with its name, a flattened one with its addresses, and fails over from one that does not resolve', () => {
    const config = defaultConfig();
    const jkt = config.regions.find((r) => r.id === 'jkt')!;
    for (const z of jkt.zones) z.endpoints = [{ hostname: `${z.id}.elb.test`, weight: 100, down: false }];
    const client = { ip: '36.66.0.1', source: 'ecs' as const, country: 'ID', location: { lat: -6.2, lon: 106.8 }, scope: 24, via: 'test' };
    const ask = (s: ReturnType<typeof buildSnapshot>, family: 4 | 6) => steer({ service: 'api', family, client }, s, seededRandom(1));

    const cname = ask(buildSnapshot(config, 1), 4);
    expect(cname.region).toBe('jkt');
    expect(cname.answers[0].cname).toMatch(/^jkt-[a-z]\.elb\.test$/);
    expect(ask(buildSnapshot(config, 1), 6).answers[0].cname).toMatch(/elb\.test$/); // a CNAME serves both families

    for (const z of jkt.zones) z.endpoints[0].flatten = true;
    const resolved = Object.fromEntries(jkt.zones.map((z, i) => [`${z.id}.elb.test`, { addresses: [`192.0.2.${40 + i}`], ttl: 7 }]));
    const flat = ask(buildSnapshot(config, 2, { resolved }), 4);
    expect(flat.region).toBe('jkt');
    expect(flat.answers.flatMap((a) => a.addresses).sort()).toEqual(Object.values(resolved).map((r) => r.addresses[0]).sort());
    expect(flat.ttl).toBe(2); // a quarter of 7, rounded up: looked up again at 3/4, an answer never outlives the records
    expect(ask(buildSnapshot(config, 2, { resolved }), 6).region).not.toBe('jkt'); // no AAAA resolved: IPv6 goes elsewhere

    const gone = Object.fromEntries(Object.keys(resolved).map((k) => [k, { error: 'NXDOMAIN from 127.0.0.1' }]));
    const down = buildSnapshot(config, 3, { resolved: gone });
    const e = down.regionById.get('jkt')!.zones[0].endpoints[0];
    expect(e.health).toBe('down');
    expect(e.reason).toMatch(/hostname .* does not resolve: NXDOMAIN/);
    expect(ask(down, 4).region).not.toBe('jkt');
  });
});

describe('hostname events', () => {
  it('an endpoint.down naming the host when its name stops resolving, an endpoint.up when it resolves again, nothing for a probe-driven change', async () => {
    const { hostnameChanges } = await import('./status.js');
    const config = defaultConfig();
    const z = config.regions.find((r) => r.id === 'jkt')!.zones[0];
    z.endpoints = [{ hostname: 'alb.elb.test', flatten: true, weight: 100, down: false }];
    const ok = buildSnapshot(config, 1, { resolved: { 'alb.elb.test': { addresses: ['192.0.2.9'], ttl: 60 } } });
    const gone = buildSnapshot(config, 2, { resolved: { 'alb.elb.test': { error: 'NXDOMAIN from 127.0.0.1' } } });
    const key = `jkt/${z.id}/alb.elb.test`;
    expect(hostnameChanges(ok, gone)).toEqual([expect.objectContaining({ kind: 'endpoint.down', subject: key, reason: expect.stringContaining('NXDOMAIN') })]);
    expect(hostnameChanges(gone, ok)).toEqual([expect.objectContaining({ kind: 'endpoint.up', subject: key })]);
    const probedDown = buildSnapshot(config, 3, { resolved: { 'alb.elb.test': { addresses: ['192.0.2.9'], ttl: 60 } }, health: new Map([[key, { state: 'down' as const, reason: '3 of 3 agents: timeout' }]]) });
    expect(hostnameChanges(ok, probedDown)).toEqual([]);
  });
});
