// The balancer's link to control's replicas, answered in memory: the section
// polled with If-None-Match (304s apply nothing), a change applied, a failed
// replica left for the next, and each capacity report sent to every replica.
import { afterEach, describe, expect, it } from 'vitest';
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { createBalancerControlLink, type BalancerControlLink } from './control-link.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const section = (weight: number) => balancerSchema.parse({ listen: '127.0.0.1:0', instances: [{ id: 'a', url: 'http://10.0.0.1:8000', weight, models: ['m'] }] });

type Replica = { up: boolean; doc: BalancerDoc; polls: { ifNoneMatch: string | null }[]; reports: unknown[]; status?: number };

function replicas(n: number, doc: BalancerDoc) {
  const all = new Map<string, Replica>(Array.from({ length: n }, (_, i) => [`http://c${i}.test:8080`, { up: true, doc, polls: [], reports: [] }]));
  const tagOf = (d: BalancerDoc) => `"w${d.instances[0].weight}"`;
  const fetchImpl = async (url: string, init?: RequestInit): Promise<Response> => {
    await Promise.resolve();
    const u = new URL(url);
    const r = all.get(u.origin)!;
    if (!r.up) throw new TypeError('fetch failed', { cause: new Error(`connect ECONNREFUSED ${u.host}`) });
    if (r.status) return new Response('{"error":"busy"}', { status: r.status });
    if (init?.method === 'POST') {
      r.reports.push(JSON.parse(init.body as string));
      return Response.json({ accepted: true });
    }
    const inm = new Headers(init?.headers).get('if-none-match');
    r.polls.push({ ifNoneMatch: inm });
    if (inm === tagOf(r.doc)) return new Response(null, { status: 304, headers: { etag: tagOf(r.doc) } });
    return Response.json(r.doc, { headers: { etag: tagOf(r.doc) } });
  };
  return { urls: [...all.keys()], at: (i: number) => [...all.values()][i], fetchImpl };
}

function link(c: ReturnType<typeof replicas>): BalancerControlLink {
  const l = createBalancerControlLink({ urls: c.urls, region: 'jkt', token: 't', fetchImpl: c.fetchImpl, log: silentLogger(), pollMs: 10, backoff: { minMs: 5, maxMs: 20 } });
  cleanup.push(() => l.stop());
  return l;
}

const until = async (ok: () => boolean, what: string, ms = 5000) => {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 5))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
};

describe("balancer's link to control", () => {
  it('polls with If-None-Match: unchanged costs a 304 and applies nothing; a change is applied once', async () => {
    const c = replicas(1, section(100));
    const applied: BalancerDoc[] = [];
    const l = link(c);
    l.follow((d) => void applied.push(d));
    await until(() => c.at(0).polls.length >= 5, 'five polls');
    expect(applied).toEqual([section(100)]);
    expect(c.at(0).polls[0].ifNoneMatch).toBeNull();
    expect(c.at(0).polls.slice(1).every((p) => p.ifNoneMatch === '"w100"')).toBe(true);
    expect(l.status()).toEqual({ connected: true, url: c.urls[0] });

    c.at(0).doc = section(7);
    await until(() => applied.length === 2, 'the change applied');
    expect(applied[1]).toEqual(section(7));
    const polled = c.at(0).polls.length;
    await until(() => c.at(0).polls.length >= polled + 3, 'more polls');
    expect(applied).toHaveLength(2);
  });

  it('moves to the next replica when one fails, and the ETag holds there: nothing is fetched again', async () => {
    const c = replicas(3, section(100));
    const applied: BalancerDoc[] = [];
    const l = link(c);
    l.follow((d) => void applied.push(d));
    await until(() => c.at(0).polls.length >= 2, 'polls of the first replica');
    c.at(0).up = false;
    c.at(1).status = 503;
    await until(() => c.at(2).polls.length >= 3, 'polls of the third replica');
    expect(l.status()).toEqual({ connected: true, url: c.urls[2] });
    expect(c.at(2).polls.every((p) => p.ifNoneMatch === '"w100"')).toBe(true);
    expect(applied).toHaveLength(1);

    // All away: not connected, and the last configuration stays.
    c.at(2).up = false;
    await until(() => !l.status().connected, 'the link to be down');
    expect(applied).toHaveLength(1);
    c.at(0).up = true;
    await until(() => l.status().connected && l.status().url === c.urls[0], 'back on the first replica');
  });

  it('sends each capacity report to every replica, and fails only when none took it', async () => {
    const c = replicas(3, section(100));
    const l = link(c);
    c.at(1).up = false;
    const report = { region: 'jkt', balancer: 'b', instances: 1, ready: 1, outstanding: 0, freeConcurrency: 16, queueDepth: 0 };
    await l.report(report);
    expect([c.at(0).reports, c.at(1).reports, c.at(2).reports]).toEqual([[report], [], [report]]);
    c.at(0).up = false;
    c.at(2).status = 500;
    await expect(l.report(report)).rejects.toThrow(/no replica took the capacity report/);
  });
});
