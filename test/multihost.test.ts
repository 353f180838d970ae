// Many hosts, one machine: every region is a Linux network namespace of its
// own, joined by a switch that delays frames by the round trips between the
// sites (test/helpers/netns.ts). Each region runs a probe agent and a balancer
// on its zones' addresses in front of two simulated GPUs; Singapore runs
// control; Singapore and Jakarta each run a DNS node fed by control's stream.
// Clients in Manila and Bangkok ask those nodes with dig. Then: control dies
// and the nodes keep answering; one probe agent is cut off from the other
// regions and nothing fails over; Jakarta's balancer dies and every node sends
// Indonesia elsewhere.
//
// Every link runs over TLS, with certificates from `arus certs init`: control's
// API requires client certificates (mutual TLS), and each probe agent, balancer
// and DNS node presents its own and names control by an https:// URL; the
// test's own API calls present an admin's. The probes' health checks of the
// balancers are HTTPS too: each balancer serves the lab's server certificate
// on its zone addresses, and the probes trust the lab CA (NODE_EXTRA_CA_CERTS:
// the checks use node's default trust store).
//
// Runs as root (CI does); elsewhere it skips and says why.
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir, until } from './helpers/arus.js';
import { certsInit, type Certs } from './helpers/credentials.js';
import { connectTimes, createLab, digFrom, httpVia, netnsUnsupported, removeStaleLabs, startArusIn, type Host, type Lab, type NsProcess } from './helpers/netns.js';

const unsupported = netnsUnsupported();
// CI must run it: there a missing capability fails the test instead of skipping it.
const skip = unsupported !== undefined && !process.env.CI;
if (unsupported) console.warn(`multi-host test ${skip ? 'skipped' : 'cannot run'}: ${unsupported}`);

const PREFIX = 'arus-mh-';
const NET = '10.77.0';
const REGIONS = ['sg', 'jkt', 'bkk', 'mnl'] as const;
type Region = (typeof REGIONS)[number];
/** Each region's host address; its two zones' addresses (the balancer's) follow it: sg .10 → .11, .12. */
const BASE: Record<Region, number> = { sg: 10, jkt: 20, bkk: 30, mnl: 40 };
const hostAddr = (r: Region) => `${NET}.${BASE[r]}`;
const zoneAddrs = (r: Region) => [`${NET}.${BASE[r] + 1}`, `${NET}.${BASE[r] + 2}`];
/** Round trips between the sites, ms (inside one namespace: loopback). */
const RTT: Record<string, Record<string, number>> = { sg: { jkt: 12, bkk: 20, mnl: 35 }, jkt: { bkk: 32, mnl: 45 }, bkk: { mnl: 40 } };
const rtt = (a: Region, b: Region) => RTT[a]?.[b] ?? RTT[b]?.[a] ?? 0;
/** ECS subnets of clients in each region's home country. */
const CLIENTS = { ID: '36.66.0.0/24', SG: '165.21.0.0/24', TH: '171.96.0.0/24', PH: '112.198.0.0/24' } as const;
type Country = keyof typeof CLIENTS;
const HOME: Record<Country, Region> = { ID: 'jkt', SG: 'sg', TH: 'bkk', PH: 'mnl' };
/** DNS nodes: where they run, and where the clients that ask them are. */
const NODES = { 'dns-sg': { region: 'sg', client: 'mnl' }, 'dns-jkt': { region: 'jkt', client: 'bkk' } } as const;
type Node = keyof typeof NODES;
const CONTROL = `https://${hostAddr('sg')}:8080`;
/** Every client identity of the lab: an agent and a balancer per region, each DNS node, and the test's admin. */
const IDENTITIES = [...REGIONS.flatMap((r) => [`probe/${r}/probe-${r}`, `balancer/${r}`]), ...Object.keys(NODES).map((n) => `dns/${n}`), 'admin/tester'];

type Answers = Record<Node, Record<Country, string[]>>;
type Vote = { agent: string; ok: boolean; streak: number; error?: string; fresh: boolean };
type Health = { regions: { id: string; zones: { id: string; endpoints: { address: string; state: string; votes: Vote[] }[] }[] }[]; agents: { id: string; fresh: boolean }[]; latency: unknown };
type Event = { time: number; kind: string; subject: string; oldState: string; newState: string; reason: string; data: { countries?: string[]; gapMs?: number } | null };

describe.skipIf(skip)(`regions as network namespaces${skip ? ` (skipped: ${unsupported})` : ''}`, () => {
  let lab: Lab | undefined;
  let dir: string;
  let api: Awaited<ReturnType<typeof httpVia>> | undefined;
  let control: NsProcess | undefined;
  let certs: Certs;
  /** Every arus process started, ready or not, live or not: afterAll stops them all. */
  const procs: NsProcess[] = [];
  const balancers = new Map<Region, NsProcess>();
  const host = (name: string): Host => lab!.hosts.get(name)!;

  const startControl = () =>
    startArusIn(host('sg'), 'control', ['control', '--db', join(dir, 'arus.db'), '--regions', join(dir, 'regions'), '--api-listen', `${hostAddr('sg')}:8080`, ...certs.serverArgs({ mutual: true })], { into: procs });
  const startBalancer = (r: Region) =>
    startArusIn(host(r), `balancer-${r}`, ['balancer', '--region', r, '--control', CONTROL, ...certs.clientArgs(`balancer/${r}`), '--tls-cert', certs.server.cert, '--tls-key', certs.server.key, '--id', `balancer-${r}`], { into: procs });
  const get = async <T>(path: string) => {
    const res = await api!.call('GET', path, {});
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as T;
  };
  const eventsSince = async (since: number, kind?: string) =>
    (await get<{ events: Event[] }>(`/v1/events?since=${since}&limit=1000${kind ? `&kind=${kind}` : ''}`)).events.reverse();

  /** What `node` answers clients of each of `countries`, asked by one dig from the node's client host. */
  const ask = async (node: Node, countries: Country[]): Promise<string[][]> => {
    const { region, client } = NODES[node];
    const replies = await digFrom(host(client), hostAddr(region), countries.map((c) => ['api.gslb.example.com', 'A', `+subnet=${CLIENTS[c]}`]));
    return replies.map((r) => {
      expect(r.status, r.raw).toBe('NOERROR');
      return r.answers.filter((a) => a.type === 'A').map((a) => a.data).sort();
    });
  };
  /** Every country on every node. */
  const answersNow = async (): Promise<Answers> => {
    const nodes = Object.keys(NODES) as Node[];
    const countries = Object.keys(CLIENTS) as Country[];
    const got = await Promise.all(nodes.map((n) => ask(n, countries)));
    // Keys in a fixed order: answers compare as JSON.
    return Object.fromEntries(nodes.map((n, i) => [n, Object.fromEntries(countries.map((c, j) => [c, got[i][j]]))])) as Answers;
  };
  const expected = (moved: Partial<Record<Country, Region>> = {}): Answers => {
    const one = Object.fromEntries((Object.keys(CLIENTS) as Country[]).map((c) => [c, zoneAddrs(moved[c] ?? HOME[c])])) as Record<Country, string[]>;
    return { 'dns-sg': one, 'dns-jkt': one };
  };
  /** Asks every node for every country every 250 ms for `ms`; returns the answers that differed from `want`. */
  const holdFor = async (ms: number, want: Answers) => {
    const wrong: { at: number; got: Answers }[] = [];
    let rounds = 0;
    for (const end = Date.now() + ms; Date.now() < end; rounds++) {
      const t = Date.now();
      const got = await answersNow();
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push({ at: t, got });
      await new Promise((r) => setTimeout(r, Math.max(0, 250 - (Date.now() - t))));
    }
    return { wrong, rounds };
  };
  const endpoints = (h: Health) => h.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => ({ region: r.id as Region, ...e }))));
  /** Every agent fresh, every endpoint up with four fresh successful votes. */
  const allHealthy = (h: Health) => h.agents.filter((a) => a.fresh).length === 4 && endpoints(h).every((e) => e.state === 'up' && e.votes.filter((v) => v.fresh && v.ok).length === 4);

  beforeAll(async () => {
    if (unsupported) throw new Error(`the multi-host test cannot make network namespaces here: ${unsupported}`);
    removeStaleLabs(PREFIX);
    dir = tempDir('arus-multihost-');
    // The default regions with the zones' addresses moved from 127.0.1.x to the lab's network.
    cpSync(join(ROOT, 'regions'), join(dir, 'regions'), { recursive: true });
    const simListen = new Map<Region, string[]>();
    for (const f of readdirSync(join(dir, 'regions'))) {
      const path = join(dir, 'regions', f);
      // The zones' addresses on the lab's network, and the probes' checks of the balancers over HTTPS.
      const text = readFileSync(path, 'utf8').replaceAll('127.0.1.', `${NET}.`).replaceAll(`url: "http://${NET}.`, `url: "https://${NET}.`);
      writeFileSync(path, text);
      const id = /^id: (\w+)/m.exec(text)?.[1] as Region | undefined;
      if (id) simListen.set(id, [...text.matchAll(/url: "http:\/\/(127\.0\.0\.1:\d+)"/g)].map((m) => m[1]));
    }
    for (const r of REGIONS) {
      expect(readFileSync(join(dir, 'regions', `${r}.yaml`), 'utf8')).toContain(`listen: ["${zoneAddrs(r)[0]}:8000", "${zoneAddrs(r)[1]}:8000"]`);
      expect(simListen.get(r)).toHaveLength(2);
      expect(readFileSync(join(dir, 'regions', `${r}.yaml`), 'utf8')).toContain(`url: "https://${zoneAddrs(r)[0]}:8000/v1/models"`);
    }
    // One server certificate for control and every balancer: it names every address they serve on.
    certs = certsInit(join(dir, 'certs'), { names: [hostAddr('sg'), ...REGIONS.flatMap(zoneAddrs), '127.0.0.1', 'localhost'], clients: IDENTITIES });

    const t0 = Date.now();
    lab = await createLab({ prefix: PREFIX, cidr: 24, hosts: REGIONS.map((r) => ({ name: r, addresses: [hostAddr(r), ...zoneAddrs(r)] })), rttMs: RTT });
    control = await startControl();
    api = await httpVia(host('sg'), join(dir, 'api.sock'), `${hostAddr('sg')}:8080`, { ca: certs.ca, ...certs.client('admin/tester') });
    const starting: Promise<unknown>[] = [
      // The GPUs before their balancer, so that it finds its instances ready.
      ...REGIONS.map(async (r) => {
        await startArusIn(host(r), `sim-${r}`, ['sim', '--listen', simListen.get(r)!.join(',')], { into: procs });
        balancers.set(r, await startBalancer(r));
      }),
      ...REGIONS.map((r) =>
        startArusIn(host(r), `probe-${r}`, ['probe', '--region', r, '--control', CONTROL, ...certs.clientArgs(`probe/${r}/probe-${r}`), '--id', `probe-${r}`], { env: { NODE_EXTRA_CA_CERTS: certs.ca }, into: procs }),
      ),
      ...(Object.keys(NODES) as Node[]).map((n) =>
        startArusIn(
          host(NODES[n].region),
          n,
          ['dns', '--control', CONTROL, ...certs.clientArgs(`dns/${n}`), '--id', n, '--snapshot', join(dir, n, 'snapshot.json'), '--dns-listen', `${hostAddr(NODES[n].region)}:53`, '--metrics-listen', '127.0.0.1:9153'],
          { into: procs },
        ),
      ),
    ];
    await Promise.all(starting);
    // TLS on every link: control's API requires client certificates; each balancer serves HTTPS.
    expect(control.logs.find((l) => l.msg === 'ready')).toMatchObject({ api: CONTROL, tls: 'mutual' });
    for (const [r, b] of balancers) expect(b.logs.find((l) => l.msg === 'ready'), r).toMatchObject({ tls: true });
    await until(() => get<Health>('/v1/health'), allHealthy, 20_000, 250);
    await until(answersNow, (a) => JSON.stringify(a) === JSON.stringify(expected()), 10_000, 250);
    console.log(`multi-host lab: 4 namespaces, 15 arus processes, every link over TLS (control's API mutual), all healthy in ${Date.now() - t0} ms`);
  }, 150_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await api?.close();
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('delays packets between regions by their round trips, and every DNS node answers each country with its home region', async () => {
    const table: string[] = [];
    for (const a of REGIONS) {
      const others = REGIONS.filter((b) => b !== a);
      const times = await connectTimes(host(a), others.map((b) => `${zoneAddrs(b)[0]}:8000`), 5);
      const row = others.map((b) => {
        // The first connect also resolves the neighbour's MAC address: left out.
        const samples = times[`${zoneAddrs(b)[0]}:8000`].slice(1).sort((x, y) => x - y);
        expect(samples[0], `${a} → ${b}`).toBeGreaterThanOrEqual(rtt(a, b) - 0.5);
        // Loose: a loaded machine adds its scheduling delays (the switch is a userspace process).
        expect(samples[0], `${a} → ${b}`).toBeLessThan(2 * rtt(a, b) + 50);
        return `${b} ${samples[Math.floor(samples.length / 2)].toFixed(1)} (want ${rtt(a, b)})`;
      });
      table.push(`${a} → ${row.join(', ')}`);
    }
    console.log(`TCP connect times, median ms:\n  ${table.join('\n  ')}`);
    expect(await answersNow()).toEqual(expected());
    console.log(`RTT probe region → endpoint region as control measured it (HTTP checks), ms: ${JSON.stringify((await get<Health>('/v1/health')).latency)}`);
  }, 60_000);

  it('keeps answering on both DNS nodes while control is dead, and they reconnect when it is back', async () => {
    const killed = Date.now();
    await control!.kill9();
    let dead: Awaited<ReturnType<typeof holdFor>>;
    let restarting: number;
    try {
      dead = await holdFor(6000, expected());
    } finally {
      // Back whatever happened: the next scenarios need it.
      restarting = Date.now();
      control = await startControl();
    }
    const up = Date.now();
    expect(dead.wrong).toEqual([]);
    expect(dead.rounds).toBeGreaterThanOrEqual(3);
    console.log(`control dead for 6 s: ${dead.rounds} rounds of ${2 * Object.keys(CLIENTS).length} queries, every answer unchanged`);
    const reconnected = await until(
      () => eventsSince(restarting, 'dns.reconnected'),
      (e) => (Object.keys(NODES) as Node[]).every((n) => e.some((x) => x.subject === `dns:${n}`)),
      15_000,
      200,
    );
    const seen = Date.now();
    for (const n of Object.keys(NODES) as Node[]) {
      const e = reconnected.find((x) => x.subject === `dns:${n}`)!;
      expect(e.data!.gapMs).toBeGreaterThanOrEqual(up - killed - 3000);
      console.log(`${n}: without control for ${e.data!.gapMs} ms, reconnected ${e.time - up} ms after control was ready`);
    }
    console.log(`control: dead ${restarting - killed} ms, restarted in ${up - restarting} ms; both nodes reconnected within ${seen - up} ms`);
    // Probe agents and balancers found it again too; answers never moved.
    await until(() => get<Health>('/v1/health'), allHealthy, 15_000, 250);
    expect(await answersNow()).toEqual(expected());
  }, 60_000);

  it('does not fail over when one probe agent is cut off from the other regions', async () => {
    const since = Date.now();
    // Bangkok's host loses every other region's zone addresses, both ways; it still reaches control,
    // and everyone still reaches Bangkok's zones. Its agent reports the others as failing; three agents see them fine.
    const cut = REGIONS.filter((r) => r !== 'bkk').flatMap(zoneAddrs);
    await lab!.block('bkk', cut);
    const failing = (h: Health) => endpoints(h).filter((e) => cut.includes(e.address)).every((e) => e.votes.some((v) => v.agent === 'probe-bkk' && v.fresh && !v.ok && v.streak >= 2));
    let partitioned: Health;
    let held: Awaited<ReturnType<typeof holdFor>>;
    try {
      held = await holdFor(6000, expected());
      // The cut bit: Bangkok's agent has seen every cut endpoint fail at least twice in a row (what takes an endpoint down) …
      partitioned = await until(() => get<Health>('/v1/health'), failing, 10_000, 250);
      held.wrong.push(...(await holdFor(500, expected())).wrong);
    } finally {
      const { dropped } = await lab!.heal('bkk');
      console.log(`partition of bkk: ${dropped} frames dropped by the switch so far`);
    }
    expect(held.wrong).toEqual([]);
    expect(held.rounds).toBeGreaterThanOrEqual(3);
    for (const e of endpoints(partitioned)) {
      const vote = e.votes.find((v) => v.agent === 'probe-bkk')!;
      if (cut.includes(e.address)) expect(vote, e.address).toMatchObject({ ok: false, error: expect.stringMatching(/timeout/) });
      else expect(vote, e.address).toMatchObject({ ok: true });
      // … and nothing went down: one agent of four is no majority.
      expect(e.state, e.address).toBe('up');
    }
    console.log(`bkk cut off from the other regions' zones for ${Date.now() - since} ms: its agent failed ${cut.length} endpoints, the other three agents kept them up; answers unchanged over ${held.rounds} rounds`);
    const events = await eventsSince(since);
    expect(events.filter((e) => /^(endpoint|zone|region)\.|^fail(over|back)$/.test(e.kind))).toEqual([]);
    await until(() => get<Health>('/v1/health'), allHealthy, 10_000, 250);
  }, 30_000);

  it("moves Indonesia off Jakarta on every DNS node when Jakarta's balancer is killed, records the failover, and fails back", async () => {
    const t0 = Date.now();
    await balancers.get('jkt')!.kill9();
    const moved = expected({ ID: 'sg' });
    const times = await Promise.all(
      (Object.keys(NODES) as Node[]).map(async (n) => {
        await until(() => ask(n, ['ID']), ([a]) => JSON.stringify(a) === JSON.stringify(moved[n].ID), 10_000, 100);
        return [n, Date.now() - t0] as const;
      }),
    );
    console.log(`failover after kill -9 of jkt's balancer: ${times.map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);
    for (const [, ms] of times) expect(ms).toBeLessThan(10_000);
    expect(await answersNow()).toEqual(moved);

    // One failover event per destination region; Indonesia's goes to Singapore.
    const ofIndonesia = (e: Event[]) => e.find((x) => x.data?.countries?.includes('ID'));
    const failover = ofIndonesia(await until(() => eventsSince(t0, 'failover'), (e) => ofIndonesia(e) !== undefined, 5000, 200))!;
    expect(failover).toMatchObject({ subject: 'service:api', oldState: 'jkt', newState: 'sg' });
    const downs = (await eventsSince(t0, 'endpoint.down')).map((e) => e.subject).sort();
    expect(downs).toEqual(zoneAddrs('jkt').map((a, i) => `jkt/jkt-${'ab'[i]}/${a}`));
    console.log(`failover event ${failover.time - t0} ms after the kill: ${failover.reason.replace(/^.*: /, '')}`);

    const back = Date.now();
    balancers.set('jkt', await startBalancer('jkt'));
    const restarted = Date.now();
    await until(answersNow, (a) => JSON.stringify(a) === JSON.stringify(expected()), 15_000, 100);
    console.log(`failback: jkt's balancer restarted in ${restarted - back} ms, both nodes answered jkt again ${Date.now() - restarted} ms later`);
    expect((await eventsSince(t0, 'failback')).map((e) => [e.oldState, e.newState])).toContainEqual(['sg', 'jkt']);
  }, 45_000);
});
