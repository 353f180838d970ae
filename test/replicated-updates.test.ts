// RFC 2136 updates to the replicated control plane, end to end: three `arus
// control --etcd … --update-listen` replicas on a real 3-member etcd cluster
// and two `arus dns` nodes streaming from them. A TSIG key made with `arus
// tsig create --etcd` (its secret sealed in etcd, never in plain text) signs
// updates any replica takes; an update sent through one replica reaches both
// DNS nodes; a MAC one replica took is refused by every other (the replay
// guard lives in etcd); a key revoked in etcd is refused by every replica.
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASS, encodeUpdate, T, txtRdata } from '../src/update/message.js';
import { signRequest } from '../src/update/tsig.js';
import { arusAsync, until } from './helpers/arus.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { etcdMissing } from './helpers/etcd.js';
import { hasNsupdate, nsupdate, sendUdp } from './helpers/nsupdate.js';
import { caughtUp, etcdClient, startLab, type Lab } from './helpers/replicated.js';

const enabled = (etcdMissing === undefined && hasDig && hasNsupdate) || Boolean(process.env.CI);
if (!enabled) console.warn(`replicated updates test skipped: ${etcdMissing ?? 'dig or nsupdate missing'}`);
const APEX = 'gslb.example.com';
const ACME = `_acme-challenge.${APEX}`;
const KEK = 'replicated-updates-key-encryption-key';

describe.runIf(enabled)('RFC 2136 updates on the replicated control plane', () => {
  let lab: Lab;
  let etcd: Etcd3;
  let secret: string;
  const key = () => `hmac-sha256:certbot:${secret}`;
  const txtOn = async (i: number) => (await digAsync('127.0.0.1', lab.dns[i].run.dnsPort, ['+norec', ACME, 'TXT'])).answers.filter((a) => a.type === 'TXT').map((a) => a.data);
  const zoneRevision = async () => Number((await etcd.get('/arus/config/zone').exec()).kvs[0]?.mod_revision ?? 0);
  const port = (i: number) => lab.replicas[i].updatePort!;

  beforeAll(async () => {
    lab = await startLab({ dns: 2, updates: { kek: KEK } });
    etcd = etcdClient(lab.etcd);
    const created = await arusAsync(['tsig', 'create', '--name', 'certbot', '--allow', 'TXT:_acme-challenge.*', ...lab.etcdArgs], { env: { ARUS_TSIG_KEY: KEK } });
    expect(created.code, created.stderr).toBe(0);
    secret = /-y hmac-sha256:certbot:(\S+)/.exec(created.stdout)![1];
    await caughtUp(lab, etcd);
  }, 120_000);
  afterAll(async () => {
    etcd?.close();
    await lab?.stop();
  });

  it('keeps the key sealed in etcd, and lists it without its secret', async () => {
    const stored = await etcd.get('/arus/tsig/keys/certbot').string();
    expect(stored).toBeTruthy();
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(Buffer.from(secret, 'base64').toString('hex'));
    const listed = await arusAsync(['tsig', 'list', ...lab.etcdArgs], { env: { ARUS_TSIG_KEY: KEK } });
    expect(listed.stdout).toMatch(/^certbot {2}hmac-sha256 {2}allow TXT:_acme-challenge\.\*/m);
    expect(listed.stdout).not.toContain(secret);
    // Another key-encryption key could not open the keys the replicas use: refused before anything is written.
    const wrong = await arusAsync(['tsig', 'create', '--name', 'other', '--allow', 'TXT:x', ...lab.etcdArgs], { env: { ARUS_TSIG_KEY: 'not-the-replicas-key-encryption-key' } });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('ARUS_TSIG_KEY');
    expect((await etcd.get('/arus/tsig/keys/other').exec()).kvs).toHaveLength(0);
  });

  it('an update through any replica is on every DNS node soon after, and the delete through another one too', async () => {
    const t0 = Date.now();
    const add = await nsupdate(port(0), APEX, key(), [`update add ${ACME} 60 TXT "through-0"`]);
    expect(add.code, add.out).toBe(0);
    // The promise is a second; waited for with 3× margin, the time taken printed.
    await until(() => Promise.all([txtOn(0), txtOn(1)]), (both) => both.every((v) => v.includes('"through-0"')), 3000, 25);
    console.log(`replicated update: on both DNS nodes ${Date.now() - t0} ms after nsupdate started`);
    const del = await nsupdate(port(2), APEX, key(), [`update delete ${ACME} TXT`], true);
    expect(del.code, del.out).toBe(0);
    await until(() => Promise.all([txtOn(0), txtOn(1)]), (both) => both.every((v) => v.length === 0), 3000, 25);
  });

  it('refuses on every other replica a MAC one replica took: nothing changes', async () => {
    const msg = signRequest(encodeUpdate({ id: 9, zone: APEX, updates: [{ name: ACME, type: T.TXT, class: CLASS.IN, ttl: 60, rdata: txtRdata('once') }] }), {
      keyName: 'certbot',
      secret: Buffer.from(secret, 'base64'),
      timeSigned: Math.floor(Date.now() / 1000),
    });
    expect((await sendUdp(port(1), msg))[3] & 0xf).toBe(0);
    await until(() => txtOn(0), (v) => v.includes('"once"'), 3000, 25);
    const del = await nsupdate(port(1), APEX, key(), [`update delete ${ACME} TXT`]);
    expect(del.code, del.out).toBe(0);
    await until(() => txtOn(1), (v) => v.length === 0, 3000, 25);
    const rev = await zoneRevision();
    for (const i of [0, 1, 2]) expect((await sendUdp(port(i), msg))[3] & 0xf, `replica ${i}`).toBe(5); // REFUSED
    await new Promise((r) => setTimeout(r, 300));
    expect(await zoneRevision()).toBe(rev);
    expect(await txtOn(0)).toEqual([]);
  });

  it('a key revoked in etcd is refused by every replica', async () => {
    const revoked = await arusAsync(['tsig', 'revoke', 'certbot', ...lab.etcdArgs], { env: { ARUS_TSIG_KEY: KEK } });
    expect(revoked.stdout).toContain('revoked TSIG key certbot');
    await caughtUp(lab, etcd);
    const rev = await zoneRevision();
    for (const i of [0, 1, 2]) {
      const r = await nsupdate(port(i), APEX, key(), [`update add ${ACME} 60 TXT "after-revoke"`]);
      expect(r.out, `replica ${i}`).toContain('BADKEY');
    }
    expect(await zoneRevision()).toBe(rev);
  });
});
