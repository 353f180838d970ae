// Hostname endpoints end to end, on real sockets: `arus up` with Bangkok's
// zones behind a load balancer's name (answered as a CNAME) and Jakarta's
// behind a name that is flattened (answered with its A records), those names
// followed through a real Unbound on loopback (`--resolver 127.0.0.1:PORT`)
// whose data the test changes at runtime with unbound-control; answers read
// with dig, the history with GET /v1/events.
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { digAsync, type DigResult } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';
import { missingTools, startLocalUnbound, type LocalUnbound } from './helpers/unbound-local.js';

// In CI a missing tool is a failure, not a skip.
const run = missingTools.length === 0 || process.env.CI === 'true';
const ADMIN = 'hostnames-admin-token';
const API = 'api.gslb.example.com';
const JAKARTA = '36.66.0.0/24';
const THAILAND = '171.96.0.0/16';
const SG = ['127.0.1.11', '127.0.1.12'];
/** The flattened name, its record's TTL (short: refreshed at 3/4 of it) and its addresses before and after the change. */
const ALB = 'alb.elb.test';
const TTL = 4;
const ALB_V4 = '192.0.2.10';
const ALB_V4_NEW = '192.0.2.20';
const CNAMES = ['web-a.elb.test.', 'web-b.elb.test.'];

type Event = { id: number; kind: string; subject: string; oldState: string; newState: string; reason: string; region: string | null; data: { countries: string[] } };

// Jakarta: one zone behind a flattened name; the other marked down in the
// configuration, so that the name alone decides whether the region serves.
const JKT = `id: jkt
name: Jakarta
location: { lat: -6.2088, lon: 106.8456 }
countries: [ID]
zones:
  - id: jkt-a
    endpoints:
      - { hostname: ${ALB}, flatten: true }
  - id: jkt-b
    endpoints:
      - { address: 127.0.1.22, down: true }
`;
// Bangkok: each zone behind a load balancer's name, answered as a CNAME.
const BKK = `id: bkk
name: Bangkok
location: { lat: 13.7563, lon: 100.5018 }
countries: [TH]
zones:
  - id: bkk-a
    endpoints:
      - { hostname: web-a.elb.test }
  - id: bkk-b
    endpoints:
      - { hostname: web-b.elb.test }
`;

describe.skipIf(!run)(`hostname endpoints, followed through a real Unbound${run ? '' : ` (skipped: ${missingTools.join(', ')} missing; Debian: unbound dnsutils)`}`, () => {
  let unbound: LocalUnbound;
  let up: Running;
  const ask = (subnet: string, type = 'A'): Promise<DigResult> => digAsync('127.0.0.1', up.dnsPort, ['+norec', API, type, `+subnet=${subnet}`]);
  const v4 = (r: DigResult) => r.answers.filter((a) => a.type === 'A').map((a) => a.data).sort();
  const jakarta = async () => v4(await ask(JAKARTA));
  const events = async (kind: string): Promise<Event[]> => {
    const res = await fetch(`${up.api}/v1/events?kind=${kind}&limit=100`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { events: Event[] }).events;
  };
  const lastEventId = async () => {
    const res = await fetch(`${up.api}/v1/events?limit=1`, { headers: { authorization: `Bearer ${ADMIN}` } });
    return ((await res.json()) as { events: Event[] }).events[0]?.id ?? 0;
  };

  beforeAll(async () => {
    const dir = tempDir('arus-hostnames-');
    unbound = await startLocalUnbound(dir, 'elb.test.', [`${ALB}. ${TTL} IN A ${ALB_V4}`, 'web-a.elb.test. 60 IN A 192.0.2.31', 'web-b.elb.test. 60 IN A 192.0.2.32']);
    const regions = regionsWithChecks(dir, () => undefined);
    writeFileSync(join(regions, 'jkt.yaml'), JKT);
    writeFileSync(join(regions, 'bkk.yaml'), BKK);
    up = await startArus(
      ['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--workers', '1', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off', '--resolver', `127.0.0.1:${unbound.port}`],
      { env: { ARUS_ADMIN_TOKEN: ADMIN } },
    );
  }, 60_000);
  afterAll(async () => {
    await up?.stop();
    await unbound?.stop();
  });

  it.each(['A', 'AAAA'])('answers a Thai client\'s %s query with one CNAME to a Bangkok zone\'s load balancer name, and no address', async (type) => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await ask(THAILAND, type);
      expect(r.status, r.raw).toBe('NOERROR');
      expect(r.flags).toContain('aa');
      expect(r.answers, r.raw).toHaveLength(1);
      expect(r.answers[0]).toMatchObject({ name: `${API}.`, type: 'CNAME' });
      expect(CNAMES).toContain(r.answers[0].data);
      seen.add(r.answers[0].data);
    }
    // Both zones are up: the weighted shuffle picks either (each 1/2; both seen in 20 but for 2^-19).
    expect([...seen].sort()).toEqual(CNAMES);
  });

  it(`flattens Jakarta's name through the resolver: A ${ALB_V4}, no CNAME, the TTL a quarter of the record's ${TTL} s`, async () => {
    // The follower asks at start-up; until then the flattened endpoint is down.
    await until(jakarta, (a) => a.join() === ALB_V4, 5000);
    const r = await ask(JAKARTA);
    expect(r.answers, r.raw).toEqual([{ name: `${API}.`, ttl: expect.any(Number), type: 'A', data: ALB_V4 }]);
    // Looked up again at 3/4 of the TTL: an answer carries a quarter, so it never outlives the record.
    expect(r.answers[0].ttl).toBe(TTL / 4);
  });

  it(`follows the name's new address within its TTL (${ALB_V4} → ${ALB_V4_NEW})`, async () => {
    await until(jakarta, (a) => a.join() === ALB_V4, 5000);
    await unbound.control('local_data_remove', `${ALB}.`);
    await unbound.control('local_data', `${ALB}. ${TTL} IN A ${ALB_V4_NEW}`);
    const direct = await digAsync('127.0.0.1', unbound.port, [`${ALB}`, 'A']);
    expect(v4(direct)).toEqual([ALB_V4_NEW]);
    // Asked again at 3/4 of the TTL: the new address is answered before the old record would have expired, plus a margin.
    await until(jakarta, (a) => a.join() === ALB_V4_NEW, TTL * 1000 + 2000);
    const r = await ask(JAKARTA);
    expect(r.answers[0].ttl).toBe(TTL / 4);
  });

  /** The events of `kind` after `id`, once there is one (3 s at most). */
  const eventsAfter = (kind: string, id: number) =>
    until(
      async () => (await events(kind)).filter((e) => e.id > id),
      (es) => es.length > 0,
      3000,
    );

  it('marks the endpoint down when its name is NXDOMAIN, fails Jakarta over to Singapore with the reason in the history, and comes back with it', async () => {
    await until(jakarta, (a) => a.length === 1 && a[0].startsWith('192.0.2.'), 5000);
    const mark = await lastEventId();
    await unbound.control('local_data_remove', `${ALB}.`);
    expect((await digAsync('127.0.0.1', unbound.port, [ALB, 'A'])).status).toBe('NXDOMAIN');

    await until(jakarta, (a) => a.join() === SG.join(), TTL * 1000 + 2000);
    const downs = await eventsAfter('endpoint.down', mark);
    expect(downs).toHaveLength(1);
    expect(downs[0]).toMatchObject({ subject: `jkt/jkt-a/${ALB}`, region: 'jkt', oldState: 'up', newState: 'down' });
    expect(downs[0].reason).toContain(ALB);
    expect(downs[0].reason).toContain('NXDOMAIN');
    // One failover event per destination: Indonesia's says it moved to Singapore, and why.
    const failovers = await eventsAfter('failover', mark);
    const indonesia = failovers.find((e) => e.data.countries.includes('ID'));
    expect(indonesia, JSON.stringify(failovers)).toMatchObject({ region: 'jkt', oldState: 'jkt', newState: 'sg' });
    expect(indonesia!.reason).toContain(`${ALB} (NXDOMAIN`);

    // Back: an unresolvable name is asked again every 2 s.
    const back = await lastEventId();
    await unbound.control('local_data', `${ALB}. ${TTL} IN A ${ALB_V4}`);
    await until(jakarta, (a) => a.join() === ALB_V4, 2000 + 3000);
    const ups = await eventsAfter('endpoint.up', back);
    expect(ups).toHaveLength(1);
    expect(ups[0]).toMatchObject({ subject: `jkt/jkt-a/${ALB}`, region: 'jkt', oldState: 'down', newState: 'up' });
    expect(ups[0].reason).toContain(ALB);
  });
});
