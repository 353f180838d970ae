// RFC 2136 dynamic updates with TSIG, black-box: `arus up --update-listen`
// driven by Debian's nsupdate (UDP and TCP) and by messages signed here, the
// answers read with dig on the DNS listener; every refusal leaves the zone's
// records and its SOA serial as they were.
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASS, encodeUpdate, parseMessage, T, txtRdata } from '../src/update/message.js';
import { signRequest, tsigOf } from '../src/update/tsig.js';
import { arus, freePort, ROOT, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { dig, hasDig } from './helpers/dig.js';
import { hasNsupdate, nsupdate as nsupdateTo, sendUdp } from './helpers/nsupdate.js';

const APEX = 'gslb.example.com';
const ACME = `_acme-challenge.${APEX}`;
const ADMIN = 'update-admin-token';
const KEK = 'update-test-key-encryption-key';
const nsupdate = (port: number, key: string, lines: string[], tcp = false) => nsupdateTo(port, APEX, key, lines, tcp);

describe.skipIf(!hasDig || !hasNsupdate)('RFC 2136 updates with TSIG, on real sockets', () => {
  let up: Running;
  let db: string;
  let updatePort: number;
  let secret: string;
  let start: () => Promise<Running>;
  const q = (name: string, type: string) => dig('127.0.0.1', up.dnsPort, ['+norec', name, type]);
  const txts = () => q(ACME, 'TXT').answers.filter((a) => a.type === 'TXT').map((a) => a.data);
  const serial = () => Number(q(APEX, 'SOA').answers[0].data.split(' ')[2]);
  const records = async () => (await (await fetch(`${up.api}/v1/records`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { records: unknown[] };
  const key = () => `hmac-sha256:certbot:${secret}`;
  const unchanged = async (act: () => Promise<void>) => {
    const [before, s] = [await records(), serial()];
    await act();
    await new Promise((r) => setTimeout(r, 300));
    expect(await records()).toEqual(before);
    expect(serial()).toBe(s);
  };
  const signed = (text: string, timeSigned = Math.floor(Date.now() / 1000)) =>
    signRequest(encodeUpdate({ id: 77, zone: APEX, updates: [{ name: ACME, type: T.TXT, class: CLASS.IN, ttl: 60, rdata: txtRdata(text) }] }), {
      keyName: 'certbot',
      secret: Buffer.from(secret, 'base64'),
      timeSigned,
    });
  const rcode = (m: Buffer) => m[3] & 0xf;

  beforeAll(async () => {
    const dir = tempDir();
    db = join(dir, 'arus.db');
    cpSync(join(ROOT, 'regions'), join(dir, 'regions'), { recursive: true });
    for (const r of ['sg', 'jkt', 'bkk', 'mnl']) {
      const f = join(dir, 'regions', `${r}.yaml`);
      writeFileSync(f, readFileSync(f, 'utf8').replace(/\n\s+check: \{[^}]*\}/g, '').replace(/^balancer:\n(?:[ #].*\n)*/m, ''));
    }
    const created = arus(['tsig', 'create', '--name', 'certbot', '--allow', 'TXT:_acme-challenge.*', '--db', db], { env: { ARUS_TSIG_KEY: KEK } });
    expect(created.code, created.stderr).toBe(0);
    secret = /-y hmac-sha256:certbot:(\S+)/.exec(created.stdout)![1];
    updatePort = await freePort();
    start = () =>
      startArus(['up', '--db', db, '--regions', join(dir, 'regions'), '--workers', '1', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off', '--update-listen', `127.0.0.1:${updatePort}`], {
        env: { ARUS_ADMIN_TOKEN: ADMIN, ARUS_TSIG_KEY: KEK },
      });
    up = await start();
  }, 60_000);
  afterAll(async () => {
    await up?.stop();
  });

  it.each([['UDP', false], ['TCP', true]] as const)('nsupdate adds and deletes a TXT over %s, seen by dig within a second, audited, serial up', async (_t, tcp) => {
    const s0 = serial();
    const add = await nsupdate(updatePort, key(), [`update add ${ACME} 60 TXT "token-${_t}"`], tcp);
    expect(add.code, add.out).toBe(0);
    // The promise is a second; waited for with 3× margin.
    await until(txts, (v) => v.includes(`"token-${_t}"`), 3000, 50);
    expect(serial()).toBeGreaterThan(s0);
    const audit = (await (await fetch(`${up.api}/v1/audit?actor=certbot`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { entries: { actor: string; role: string; subject: string }[] };
    expect(audit.entries[0]).toMatchObject({ actor: 'certbot', role: 'tsig', subject: `records:${ACME} TXT` });
    const events = (await (await fetch(`${up.api}/v1/events?limit=5`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { events: { kind: string; reason: string }[] };
    expect(events.events.some((e) => e.reason.includes('TSIG key certbot'))).toBe(true);
    const s1 = serial();
    const del = await nsupdate(updatePort, key(), [`update delete ${ACME} TXT`], tcp);
    expect(del.code, del.out).toBe(0);
    await until(() => q(ACME, 'TXT').answers.length, (n) => n === 0, 3000, 50);
    expect(serial()).toBeGreaterThan(s1);
  });

  it('refuses a bad key, a wrong secret, a name outside the key: nothing changes', async () => {
    await unchanged(async () => {
      const bad = await nsupdate(updatePort, `hmac-sha256:nobody:${secret}`, [`update add ${ACME} 60 TXT "x"`]);
      expect(bad.out).toContain('BADKEY');
      const wrong = await nsupdate(updatePort, `hmac-sha256:certbot:${Buffer.alloc(32, 7).toString('base64')}`, [`update add ${ACME} 60 TXT "x"`]);
      expect(wrong.out).toContain('BADSIG');
      const outside = await nsupdate(updatePort, key(), [`update add www.${APEX} 60 TXT "x"`]);
      expect(outside.out).toContain('REFUSED');
      const mixed = await nsupdate(updatePort, key(), [`update add ${ACME} 60 TXT "fine"`, `update add www.${APEX} 60 TXT "x"`]);
      expect(mixed.out).toContain('REFUSED');
    });
  });

  it('refuses a replayed update and a stale time: nothing changes', async () => {
    const first = signed('replay-me');
    expect(rcode(await sendUdp(updatePort, first))).toBe(0);
    await until(txts, (v) => v.includes('"replay-me"'), 3000, 50);
    const del = await nsupdate(updatePort, key(), [`update delete ${ACME} TXT`]);
    expect(del.code, del.out).toBe(0);
    await until(() => q(ACME, 'TXT').answers.length, (n) => n === 0, 3000, 50);
    await unchanged(async () => {
      expect(rcode(await sendUdp(updatePort, first))).toBe(5); // REFUSED: its MAC was seen
      const stale = await sendUdp(updatePort, signed('stale', Math.floor(Date.now() / 1000) - 1000));
      expect(rcode(stale)).toBe(9); // NOTAUTH
      expect(tsigOf(stale, parseMessage(stale))?.error).toBe(18); // BADTIME
    });
  });

  it('a prerequisite that fails applies nothing', async () => {
    await unchanged(async () => {
      const r = await nsupdate(updatePort, key(), [`prereq yxrrset ${ACME} TXT`, `update add ${ACME} 60 TXT "never"`]);
      expect(r.out).toContain('NXRRSET');
    });
    expect(txts()).toEqual([]);
  });

  it('answers a TSIG-signed SOA query and AXFR on the update listener (certbot, external-dns), signed; unsigned ones REFUSED', () => {
    // dig checks the answer's TSIG with the key: a wrong or missing signature prints "Couldn't verify" / "tsig verify failure".
    const at = (args: string[]) => spawnSync('dig', ['@127.0.0.1', '-p', String(updatePort), '+time=3', '+tries=1', '+norec', ...args], { encoding: 'utf8', timeout: 10_000 }).stdout;
    for (const tcp of [[], ['+tcp']]) {
      const soa = at([...tcp, '-y', key(), APEX, 'SOA']);
      expect(soa).toMatch(/status: NOERROR/);
      expect(soa).toMatch(/flags: qr aa/);
      expect(soa).toMatch(new RegExp(`${APEX}\\.\\s+\\d+\\s+IN\\s+SOA`));
      expect(soa).not.toMatch(/verify|failure/i);
      expect(Number(/IN\s+SOA\s+\S+\s+\S+\s+(\d+)/.exec(soa)?.[1])).toBe(serial());
      expect(soa).toMatch(/certbot\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\./);
    }
    const axfr = at(['-y', key(), APEX, 'AXFR']);
    expect(axfr).not.toMatch(/verify|failure|Transfer failed/i);
    const rrs = axfr.split('\n').filter((l) => l && !l.startsWith(';') && !/\sTSIG\s/.test(l));
    expect(rrs[0]).toMatch(/\sSOA\s/);
    expect(rrs.at(-1)).toMatch(/\sSOA\s/);
    expect(rrs.some((l) => new RegExp(`^${APEX}\\.\\s+\\d+\\s+IN\\s+NS\\s`).test(l))).toBe(true);
    // The static records as written, the glue; steered names left out (their answers depend on who asks).
    expect(rrs.some((l) => /\sCAA\s+0 issue "letsencrypt\.org"$/.test(l))).toBe(true);
    expect(rrs.some((l) => /\sTXT\s+"v=spf1 -all"$/.test(l))).toBe(true);
    expect(rrs.some((l) => l.startsWith(`ns1.${APEX}.`) && /\sA\s+192\.0\.2\.53$/.test(l))).toBe(true);
    expect(rrs.some((l) => l.startsWith(`api.${APEX}.`))).toBe(false);
    expect(at([APEX, 'SOA'])).toMatch(/status: REFUSED/);
    expect(at([APEX, 'AXFR'])).toMatch(/Transfer failed|REFUSED/);
    // A wrong secret: NOTAUTH with BADSIG, never the answer (dig, holding the wrong secret, would also fail to verify a real answer).
    const wrong = at(['-y', `hmac-sha256:certbot:${Buffer.alloc(32, 7).toString('base64')}`, APEX, 'SOA']);
    expect(wrong).toMatch(/status: NOTAUTH/);
    expect(wrong).toMatch(/ANSWER: 0,/);
    expect(wrong).toContain("tsig indicates error");
  });

  it('counts every outcome in /metrics', async () => {
    const text = await (await fetch(`${up.api}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const n = (o: string) => Number(new RegExp(`arus_dns_updates_total\\{outcome="${o}"\\} (\\d+)`).exec(text)?.[1]);
    expect(n('applied')).toBeGreaterThanOrEqual(5);
    for (const o of ['badkey', 'badsig', 'badtime']) expect(n(o)).toBeGreaterThanOrEqual(1);
    expect(n('refused')).toBeGreaterThanOrEqual(4);
  });

  it('refuses to start updates without ARUS_TSIG_KEY, naming it', () => {
    const noKey = arus(['up', '--db', db, '--update-listen', '127.0.0.1:1'], { env: { ARUS_TSIG_KEY: '' } });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('ARUS_TSIG_KEY');
  });

  it('keeps the zone consistent, as Zonemaster checks it: SOA serial monotonic (across a restart too), NS and glue untouched by updates, CAA answered at the apex', async () => {
    const wide = arus(['tsig', 'create', '--name', 'wide', '--allow', '*:*', '--db', db], { env: { ARUS_TSIG_KEY: KEK } });
    expect(wide.code, wide.stderr).toBe(0);
    const wideKey = `hmac-sha256:wide:${/-y hmac-sha256:wide:(\S+)/.exec(wide.stdout)![1]}`;
    const delegation = () => ({
      ns: q(APEX, 'NS').answers.map((a) => a.data).sort(),
      glue: ['ns1', 'ns2'].flatMap((n) => [...q(`${n}.${APEX}`, 'A').answers, ...q(`${n}.${APEX}`, 'AAAA').answers].map((a) => `${a.name} ${a.type} ${a.data}`)).sort(),
      soa: q(APEX, 'SOA').answers[0].data.split(' ').filter((_, i) => i !== 2),
    });
    const before = delegation();
    expect(before.ns).toEqual([`ns1.${APEX}.`, `ns2.${APEX}.`]);
    expect(before.glue.length).toBe(4);
    // A key that may change any static record still may not touch the zone's own: its SOA, its NS set, its name servers' addresses.
    await unchanged(async () => {
      for (const line of [`update add ${APEX} 300 NS ns9.example.net.`, `update delete ${APEX} NS`, `update delete ${APEX} SOA`, `update add ns1.${APEX} 300 A 203.0.113.9`, `update delete ns2.${APEX} AAAA`]) {
        const r = await nsupdate(updatePort, wideKey, [line]);
        expect(r.out, line).toContain('REFUSED');
      }
    });
    // Serials over a run of applied updates only grow.
    const serials = [serial()];
    for (let i = 0; i < 3; i++) {
      const r = await nsupdate(updatePort, wideKey, [`update add note${i}.${APEX} 60 TXT "n${i}"`]);
      expect(r.code, r.out).toBe(0);
      await until(serial, (s) => s > serials.at(-1)!, 3000, 50);
      serials.push(serial());
    }
    expect(delegation()).toEqual(before);
    // The apex's CAA answers as written (regions/zone.yaml), beside the SOA and NS.
    const caa = q(APEX, 'CAA');
    expect(caa.flags).toContain('aa');
    expect(caa.answers.map((a) => a.data).sort()).toEqual(['0 issue "letsencrypt.org"', '0 issuewild "letsencrypt.org"']);
    // A restart serves a serial no lower than the last one served.
    const last = serial();
    await up.stop();
    up = await start();
    expect(serial()).toBeGreaterThanOrEqual(last);
    expect(delegation()).toEqual(before);
  });
});
