// DNSSEC on the replicated control plane, end to end: a real etcd (one
// member, client TLS), two `arus control --etcd` replicas and an `arus dns
// --control URL,URL` node that the zone names as a signer. Keys are made and
// rolled with `arus dnssec … --etcd`; every replica serves the same snapshot
// (same version, same sha256: the KSK signatures are the leader's, published
// through etcd), no API read, log line, etcd value or read model holds a
// private key in the clear, and the node answers DO queries signed, with the
// new ZSK once a rollover has taken it through published → active.
import Database from 'better-sqlite3';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { arusAsync, freePort, launchArus, until } from './helpers/arus.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { etcdMissing } from './helpers/etcd.js';
import { ADMIN, api, etcdClient, oneLeader, startLab, type Lab, type Replica } from './helpers/replicated.js';

const enabled = (etcdMissing === undefined && hasDig) || Boolean(process.env.CI);
if (!enabled) console.warn(`replicated dnssec test skipped: ${etcdMissing ?? 'needs dig'}`);

const KEK = 'replicated-dnssec-kek-0123456789';
const ZONE = 'gslb.example.com';
const DNSKEY = 48;
const PEM = /BEGIN|PRIVATE KEY/;

/** Short TTLs (a ZSK rollover in seconds: Ipub 3 s, Iret 5 s), every node a signer. */
function signedZone(text: string): string {
  return (
    text
      .replace(/^( {2}minimum:) \d+/m, '$1 2')
      .replace(/^( {2}ttl:) \d+/m, '$1 3')
      .replace(/^nsTtl: \d+/m, 'nsTtl: 3')
      .replace(/^( {4}ttl:) 30/m, '$1 4')
      .replace('ttl: 3600,', 'ttl: 3,')
      .replace('type: CAA,', 'type: CAA, ttl: 3,') + 'dnssec:\n  signers: ["*"]\n  dnskeyTtl: 2\n  propagationDelay: 1\n  parentDsTtl: 2\n  zskLifetime: 0\n'
  );
}

type Doc = { version: number; sha256: string; state: { dnssec?: { keyRrsets: { type: number; rdata: string[]; rrsigs: string[] }[]; zsk?: unknown } } };

describe.skipIf(!enabled)('DNSSEC on the replicated control plane: 2 replicas on etcd, keys sealed in etcd, one signed snapshot', () => {
  let lab: Lab;
  let etcd: Etcd3;
  const dnssec = (args: string[], kek: string | undefined = KEK) => arusAsync(['dnssec', ...args, ...lab.etcdArgs], { env: { ARUS_TSIG_KEY: kek ?? '' } });
  const current = async (r: Replica) => {
    const text = await (await api(r, '/v1/snapshots/current')).text();
    return { text, doc: JSON.parse(text) as Doc };
  };
  /** Both replicas' documents once they serve the same version, and `ok` holds of it. */
  const agreed = (ok: (d: Doc) => boolean, timeoutMs = 15_000) =>
    until(() => Promise.all(lab.replicas.map(current)), (c) => c[0].doc.version === c[1].doc.version && c.every((x) => ok(x.doc)), timeoutMs, 50);
  const dnskeys = (d: Doc) => d.state.dnssec?.keyRrsets.find((r) => r.type === DNSKEY)?.rdata.length ?? 0;
  const status = async () => (await dnssec(['status'], undefined)).stdout;
  const events = async (r: Replica, kind: string) => ((await (await api(r, `/v1/events?kind=${kind}&limit=100`)).json()) as { events: { subject: string }[] }).events;
  /** The key tags of the RRSIGs over `name type` that the DNS node answers with. */
  const rrsigTags = async (name: string, type: string) => {
    const r = await digAsync('127.0.0.1', lab.dns[0].run.dnsPort, [name, type, '+dnssec']);
    return r.answers.filter((a) => a.type === 'RRSIG' && a.data.startsWith(`${type} `)).map((a) => Number(a.data.split(/\s+/)[6]));
  };

  beforeAll(async () => {
    lab = await startLab({ members: 1, replicas: 2, dns: 1, env: { ARUS_TSIG_KEY: KEK }, zone: signedZone });
    etcd = etcdClient(lab.etcd);
  }, 90_000);

  afterAll(async () => {
    etcd?.close();
    await lab?.stop();
  });

  it('unsigned until arus dnssec init --etcd; then both replicas serve the key RRsets with the same sha256 at the same version', async () => {
    for (const { doc } of await Promise.all(lab.replicas.map(current))) expect(doc.state.dnssec).toBeUndefined();
    // A key-encryption key is needed to make keys, and status needs none.
    const none = await dnssec(['init'], '');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/ARUS_TSIG_KEY/);
    const init = await dnssec(['init']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/^ksk-\d+ +KSK +\d+ +13 +active/m);
    // The parent DS TTL the zone sets (parentDsTtl 2).
    expect(init.stdout).toMatch(/^gslb\.example\.com\. 2 IN DS \d+ 13 2 [0-9A-F]{64}$/m);
    expect(init.stdout).not.toMatch(PEM);
    expect((await dnssec(['init'])).stderr).toMatch(/has DNSSEC keys already/);

    const both = await agreed((d) => d.state.dnssec?.keyRrsets.length === 3);
    expect(both[0].doc.sha256).toBe(both[1].doc.sha256);
    expect(both[0].text).toBe(both[1].text);
    expect(dnskeys(both[0].doc)).toBe(2);
    // An admin read never carries the ZSK.
    for (const { text, doc } of both) {
      expect(doc.state.dnssec?.zsk).toBeUndefined();
      expect(text).not.toMatch(PEM);
    }
    const listed = await status();
    expect(listed.split('\n').filter((l) => / active/.test(l))).toHaveLength(2);
    expect(listed).not.toMatch(PEM);
    expect((await dnssec(['ds'], undefined)).stdout).toMatch(/^gslb\.example\.com\. 2 IN DS /m);
  });

  it('no private key in the clear: not in etcd, not in a read model, not in a log line; a wrong key-encryption key is refused', async () => {
    const raw = await etcd.getAll().prefix('/arus/dnssec/keys/').strings();
    expect(Object.keys(raw)).toHaveLength(2);
    for (const value of Object.values(raw)) {
      expect(value).not.toMatch(PEM);
      expect(JSON.parse(value)).toHaveProperty('sealed');
      expect(JSON.parse(value)).not.toHaveProperty('privateKey');
    }
    for (const r of lab.replicas) {
      const db = new Database(r.db, { readonly: true, fileMustExist: true });
      try {
        const rows = db.prepare('SELECT private_key FROM dnssec_keys').all() as { private_key: string }[];
        expect(rows).toHaveLength(2);
        for (const row of rows) expect(row.private_key).not.toMatch(PEM);
      } finally {
        db.close();
      }
      expect(JSON.stringify(r.logs())).not.toMatch(PEM);
    }
    const wrong = await dnssec(['roll', '--zsk'], 'another-key-encryption-key');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/ARUS_TSIG_KEY.*not the key/);
    expect((await status()).split('\n').filter((l) => /ZSK/.test(l))).toHaveLength(1);
  });

  it('the DNS node, a signer, answers DO queries with RRSIGs by the active ZSK and serves the DNSKEY set signed', async () => {
    const zskTag = Number(/^zsk-\d+ +ZSK +(\d+) +13 +active/m.exec(await status())![1]);
    expect(await until(() => rrsigTags(`api.${ZONE}`, 'A'), (t) => t.length === 1, 15_000, 100)).toEqual([zskTag]);
    const keys = await digAsync('127.0.0.1', lab.dns[0].run.dnsPort, [ZONE, 'DNSKEY', '+dnssec']);
    expect(keys.answers.filter((a) => a.type === 'DNSKEY')).toHaveLength(2);
    expect(keys.answers.filter((a) => a.type === 'RRSIG')).toHaveLength(1);
  });

  it('arus dnssec roll --zsk --etcd: the leader takes the new ZSK through published → active, once; both replicas agree at every step', async () => {
    const leader = await oneLeader(lab.replicas);
    const roll = await dnssec(['roll', '--zsk']);
    expect(roll.code, roll.stderr).toBe(0);
    const successor = /ZSK rollover started: ZSK (\d+) \((zsk-[\w-]+)\) published/.exec(roll.stdout);
    expect(successor, roll.stdout).not.toBeNull();
    const [, tag, id] = successor!;

    // Pre-publication: three keys in DNSKEY, the old ZSK still signing.
    const published = await agreed((d) => dnskeys(d) === 3);
    expect(published[0].doc.sha256).toBe(published[1].doc.sha256);
    // Ipub (3 s) on, the leader makes it the active one; the old one retires, then leaves DNSKEY.
    await until(() => status(), (s) => new RegExp(`^${id} +ZSK +${tag} +13 +active`, 'm').test(s), 15_000, 200);
    expect(await until(() => rrsigTags(`api.${ZONE}`, 'A'), (t) => t.length === 1 && t[0] === Number(tag), 15_000, 100)).toEqual([Number(tag)]);
    await until(() => status(), (s) => /^zsk-\S+ +ZSK +\d+ +13 +removed/m.test(s), 20_000, 200);
    const after = await agreed((d) => dnskeys(d) === 2);
    expect(after[0].doc.sha256).toBe(after[1].doc.sha256);
    expect(after[0].text).not.toMatch(PEM);

    // Each step of the new key once in the history, written by the leader alone, read alike by both replicas.
    const mine = async (r: Replica, kind: string) => (await events(r, kind)).filter((e) => e.subject === `dnssec:${ZONE}/${id}`);
    for (const kind of ['dnssec.zsk.published', 'dnssec.zsk.active']) {
      const seen = await until(() => Promise.all(lab.replicas.map((r) => mine(r, kind))), (e) => e.every((x) => x.length === 1), 10_000, 100);
      expect(seen[1]).toEqual(seen[0]);
    }
    expect(await events(leader, 'dnssec.zsk.removed')).toHaveLength(1);
    // Nothing was sent twice: a step the read model did not show yet was not taken again.
    for (const r of lab.replicas) expect(r.logs().filter((l) => /DNSSEC key write/.test(String(l.msg)))).toEqual([]);
  });

  it('arus dnssec roll --ksk --etcd: both KSKs sign DNSKEY and CDS names both; --ds-published makes the new one active', async () => {
    const roll = await dnssec(['roll', '--ksk']);
    expect(roll.code, roll.stderr).toBe(0);
    const [, tag, id] = /KSK rollover started: KSK (\d+) \((ksk-[\w-]+)\) published/.exec(roll.stdout)!;
    const rrset = (d: Doc, type: number) => d.state.dnssec?.keyRrsets.find((r) => r.type === type);
    const both = await agreed((d) => dnskeys(d) === 3 && rrset(d, DNSKEY)?.rrsigs.length === 2 && rrset(d, 59)?.rdata.length === 2);
    expect(both[0].doc.sha256).toBe(both[1].doc.sha256);
    // Too early: the new DNSKEY set is not in every cache before Ipub (3 s).
    expect((await dnssec(['roll', '--ksk', '--ds-published'])).stderr).toMatch(/not in every cache's DNSKEY set/);
    await new Promise((r) => setTimeout(r, 3200));
    const done = await dnssec(['roll', '--ksk', '--ds-published']);
    expect(done.code, done.stderr).toBe(0);
    expect(await status()).toMatch(new RegExp(`^${id} +KSK +${tag} +13 +active`, 'm'));
    const after = await agreed((d) => rrset(d, 59)?.rdata.length === 1);
    expect(after[0].doc.sha256).toBe(after[1].doc.sha256);
  });

  it('a new leader signs the key RRsets itself; a restarted replica serves what the others serve; a replica without the key-encryption key refuses to start', async () => {
    const old = await oneLeader(lab.replicas);
    const before = (await current(old)).doc.version;
    await old.kill9();
    const next = await oneLeader(lab.replicas, { not: old.id });
    // It publishes at once on taking over, with its own signatures over the same keys.
    const taken = await until(() => current(next), (c) => c.doc.version > before && c.doc.state.dnssec?.keyRrsets.length === 3, 15_000, 50);
    expect(dnskeys(taken.doc)).toBeGreaterThanOrEqual(2);
    expect(await until(() => rrsigTags(`api.${ZONE}`, 'A'), (t) => t.length === 1, 15_000, 100)).toHaveLength(1);
    await old.start();
    const both = await agreed(() => true);
    expect(both[0].doc.sha256).toBe(both[1].doc.sha256);

    const port = await freePort();
    const bare = launchArus(['control', ...lab.etcdArgs, '--db', join(lab.dir, 'bare.db'), '--replica-id', 'bare', '--api-listen', `127.0.0.1:${port}`], { env: { ARUS_ADMIN_TOKEN: ADMIN, ARUS_TSIG_KEY: '' } });
    const code = await new Promise<number | null>((resolve) => bare.proc.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(bare.stderr()).toMatch(/DNSSEC keys are sealed in etcd: set ARUS_TSIG_KEY/);
  }, 60_000);
});
