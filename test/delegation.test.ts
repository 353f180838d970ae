// Delegation, end to end: NSD serves the parent zone example.com (and a root
// that delegates it), delegating gslb.example.com with NS and glue to two
// `arus dns` nodes; Unbound, with ECS on, resolves from that root. dig through
// Unbound gets the geo answer of each ECS subnet, with the scope Arus set;
// still gets one with a node killed; gets SERVFAIL with both killed, and
// answers again when a node is back.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { digAsync, type DigResult } from './helpers/dig.js';
import { additional, delegatedRegions, missingTools, PACKAGES, pickAddresses, startNsd, startUnbound, type Addresses, type Daemon, type Unbound } from './helpers/delegation.js';

const API = 'api.gslb.example.com';
/** Default regions' endpoints, by client network (the README's examples). */
const CLIENTS = [
  { country: 'ID', subnet: '36.66.0.0/24', want: ['127.0.1.21', '127.0.1.22'] },
  { country: 'SG', subnet: '165.21.42.0/24', want: ['127.0.1.11', '127.0.1.12'] },
  { country: 'TH', subnet: '171.96.7.0/24', want: ['127.0.1.31', '127.0.1.32'] },
  { country: 'PH', subnet: '112.198.5.0/24', want: ['127.0.1.41', '127.0.1.42'] },
];

const picked = missingTools.length ? undefined : await pickAddresses();
const reason = missingTools.length
  ? `needs ${missingTools.join(', ')} (Debian: apt-get install -y ${PACKAGES})`
  : picked && 'error' in picked
    ? picked.error
    : undefined;
// In CI a missing tool is a failure, not a skip.
const run = reason === undefined || Boolean(process.env.CI);
if (!run) console.warn(`delegation test skipped: ${reason}`);

const aRecords = (r: DigResult) =>
  r.answers
    .filter((x) => x.type === 'A')
    .map((x) => x.data)
    .sort();

describe.skipIf(!run)('delegation: NSD parent → two Arus nodes, through Unbound with ECS', () => {
  let a: Addresses;
  let dir: string;
  let dbFile: string;
  let control: Running;
  let controlUrl: string;
  /** Each node's own dns token, bound to its name. */
  const tokens: Record<'ns1' | 'ns2', string> = { ns1: '', ns2: '' };
  let nsd: Daemon;
  let unbound: Unbound;
  const nodes: Partial<Record<'ns1' | 'ns2', Running>> = {};

  const startNode = (name: 'ns1' | 'ns2') =>
    startArus(
      ['dns', '--control', controlUrl, '--token', tokens[name], '--id', `dns-${name}`, '--snapshot', join(dir, name, 'snapshot.json'), '--dns-listen', `${a[name]}:53`, '--metrics-listen', '127.0.0.1:0'],
      { timeoutMs: 30_000 },
    );
  const kill9 = async (r: Running) => {
    const exited = new Promise((resolve) => r.proc.once('exit', resolve));
    r.proc.kill('SIGKILL');
    await exited;
  };
  /** Through the resolver, as a client would ask. */
  const resolve = (args: string[]) => digAsync(a.resolver, 53, args);

  beforeAll(async () => {
    if (reason) throw new Error(`delegation test cannot run: ${reason}`);
    a = picked as Addresses;
    dir = tempDir('arus-delegation-');
    for (const n of ['ns1', 'ns2']) mkdirSync(join(dir, n));
    dbFile = join(dir, 'arus.db');
    const regions = delegatedRegions(dir, a);
    for (const n of ['ns1', 'ns2'] as const) tokens[n] = createToken(dbFile, { role: 'dns', node: `dns-${n}` });
    control = await startArus(['control', '--db', dbFile, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env: { ARUS_ADMIN_TOKEN: 'delegation-admin' }, timeoutMs: 30_000 });
    controlUrl = control.api!;
    const [n1, n2, parent] = await Promise.all([startNode('ns1'), startNode('ns2'), startNsd(dir, a)]);
    Object.assign(nodes, { ns1: n1, ns2: n2 });
    nsd = parent;
    unbound = await startUnbound(dir, a);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...Object.values(nodes).map((n) => n?.stop()), unbound?.stop(), nsd?.stop(), control?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the parent refers gslb.example.com to both Arus nodes, with glue, not authoritatively', async () => {
    const r = await digAsync(a.parent, 53, [API, 'A', '+norec']);
    expect(r.status).toBe('NOERROR');
    expect(r.flags).not.toContain('aa');
    expect(r.answers).toEqual([]);
    expect(r.authority.filter((x) => x.type === 'NS').map((x) => `${x.name} ${x.data}`).sort()).toEqual(['gslb.example.com. ns1.gslb.example.com.', 'gslb.example.com. ns2.gslb.example.com.']);
    expect(additional(r.raw).filter((x) => x.type === 'A').map((x) => `${x.name} ${x.data}`).sort()).toEqual([`ns1.gslb.example.com. ${a.ns1}`, `ns2.gslb.example.com. ${a.ns2}`]);
  });

  it('each Arus node answers authoritatively for the apex with the same NS and glue as the parent (no lame delegation)', async () => {
    for (const ns of [a.ns1, a.ns2]) {
      const r = await digAsync(ns, 53, ['gslb.example.com', 'NS', '+norec']);
      expect(r.status, ns).toBe('NOERROR');
      expect(r.flags, ns).toContain('aa');
      expect(r.flags, ns).not.toContain('ra');
      expect(r.answers.map((x) => x.data).sort()).toEqual(['ns1.gslb.example.com.', 'ns2.gslb.example.com.']);
      expect(additional(r.raw).filter((x) => x.type === 'A').map((x) => `${x.name} ${x.data}`).sort()).toEqual([`ns1.gslb.example.com. ${a.ns1}`, `ns2.gslb.example.com. ${a.ns2}`]);
      const soa = await digAsync(ns, 53, ['gslb.example.com', 'SOA', '+norec']);
      expect(soa.flags).toContain('aa');
      expect(soa.answers[0]).toMatchObject({ type: 'SOA', data: expect.stringMatching(/^ns1\.gslb\.example\.com\. hostmaster\.example\.com\. /) });
    }
  });

  it('through Unbound: the geo answer of each ECS subnet, with the scope Arus set', async () => {
    const seen = new Set<string>();
    for (const c of CLIENTS) {
      const direct = await digAsync(a.ns1, 53, [API, 'A', `+subnet=${c.subnet}`, '+norec']);
      const r = await resolve([API, 'A', `+subnet=${c.subnet}`]);
      expect(r.status, c.country).toBe('NOERROR');
      expect(r.flags, c.country).toContain('ra');
      expect(r.flags, c.country).not.toContain('aa');
      expect(aRecords(r), c.country).toEqual(c.want);
      // Unbound passed the subnet on and echoes the scope Arus answered with.
      expect(direct.clientSubnet, c.country).toMatch(new RegExp(`^${c.subnet}/([1-9]\\d?)$`));
      expect(r.clientSubnet, c.country).toBe(direct.clientSubnet);
      seen.add(aRecords(r).join());
    }
    expect(seen.size).toBe(CLIENTS.length);
  });

  it('through Unbound: gslb.example.com NS names the two Arus name servers', async () => {
    const r = await resolve(['gslb.example.com', 'NS']);
    expect(r.status).toBe('NOERROR');
    expect(r.answers.map((x) => x.data).sort()).toEqual(['ns1.gslb.example.com.', 'ns2.gslb.example.com.']);
    const glue = await resolve(['ns2.gslb.example.com', 'A']);
    expect(aRecords(glue)).toEqual([a.ns2]);
  });

  it('still answers with one Arus node killed (Unbound tries it, then the other)', async () => {
    await kill9(nodes.ns1!);
    // Emptying Unbound's caches before each query makes it ask a node every
    // time; its record of each server survives, so it keeps choosing between
    // them until it has tried the dead one.
    const times: number[] = [];
    let triedDead = false;
    for (let round = 0; round < 30 && !(round >= 4 && triedDead); round++) {
      await unbound.flush();
      const c = CLIENTS[round % CLIENTS.length];
      const t = Date.now();
      const r = await resolve([API, 'A', `+subnet=${c.subnet}`, '+time=4', '+tries=2']);
      times.push(Date.now() - t);
      expect(r.status, `round ${round}: ${r.raw}`).toBe('NOERROR');
      expect(aRecords(r), c.country).toEqual(c.want);
      expect(r.clientSubnet).toMatch(new RegExp(`^${c.subnet}/`));
      const dead = (await unbound.infra())[a.ns1];
      triedDead = Number(dead?.tA ?? 0) > 0;
    }
    expect(triedDead, 'Unbound never tried the dead node').toBe(true);
    console.log(`one node dead: ${times.length} answers through Unbound, in ${times.join(', ')} ms`);
    // Answered without dig giving up on Unbound twice (+time=4 +tries=2): Unbound moved to the live node on its own.
    expect(Math.max(...times)).toBeLessThan(8000);
  }, 60_000);

  it('answers SERVFAIL with both Arus nodes killed, and answers again when one is back', async () => {
    await kill9(nodes.ns2!);
    await unbound.flush();
    const t = Date.now();
    // Like a stub resolver, dig retries: Unbound drops a client's request once
    // it is older than its discard-timeout and answers the retry.
    const r = await resolve([API, 'A', `+subnet=${CLIENTS[0].subnet}`, '+time=3', '+tries=5']);
    const ms = Date.now() - t;
    expect(r.status, r.raw).toBe('SERVFAIL');
    expect(r.answers).toEqual([]);
    console.log(`both nodes dead: SERVFAIL through Unbound after ${ms} ms`);

    // The restarted node answers from its disk snapshot (control is up too).
    nodes.ns1 = await startNode('ns1');
    // Unbound now holds both servers at its capped timeout and skips them
    // until its record of them expires (infra-host-ttl, 15 min by default):
    // forgetting them stands for that wait.
    await unbound.forgetServers();
    const back = await until(
      async () => {
        await unbound.flush();
        return resolve([API, 'A', `+subnet=${CLIENTS[2].subnet}`, '+time=3', '+tries=2']).catch((e: Error) => ({ status: e.message }) as DigResult);
      },
      (x) => x.status === 'NOERROR',
      20_000,
      500,
    );
    expect(aRecords(back)).toEqual(CLIENTS[2].want);
  }, 60_000);
});
