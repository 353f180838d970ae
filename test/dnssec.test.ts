// DNSSEC end to end on `arus up`: keys made with `arus dnssec init`, the
// zone's answers to DO queries checked by BIND's validator (`delv`, anchored
// at the DS that `arus dnssec ds` printed, asking Arus directly), compact
// denial on the wire (RFC 9824, with and without the CO flag), queries
// without DO unchanged, the ZSK kept out of every API read, and a ZSK and a
// KSK rollover taken step by step, each step validated and in the history.
import { execFile, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arus, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { dig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const run = promisify(execFile);
const hasTools = spawnSync('delv', ['-v']).status === 0 && spawnSync('dig', ['-v']).status === 0;
const enabled = hasTools || Boolean(process.env.CI);
if (!enabled) console.warn('dnssec test skipped: needs delv and dig (apt-get install -y bind9-dnsutils)');

const ADMIN = 'dnssec-admin';
const ZONE = 'gslb.example.com';

/** The default regions, every endpoint up, with short TTLs so that a rollover's waits are seconds, and every node a signer. */
function signedRegions(dir: string): string {
  const out = regionsWithChecks(dir, () => undefined);
  const file = join(out, 'zone.yaml');
  let text = readFileSync(file, 'utf8');
  text = text.replace(/^( {2}minimum:) \d+/m, '$1 2').replace(/^( {2}ttl:) \d+/m, '$1 3').replace(/^nsTtl: \d+/m, 'nsTtl: 3').replace(/^( {4}ttl:) 30/m, '$1 4').replace('ttl: 3600,', 'ttl: 3,').replace('type: CAA,', 'type: CAA, ttl: 3,');
  // A TXT RRset that, signed, is more than a 512-octet client can take.
  // Beside it, one record of each kind whose RDATA holds a name (compressed by the encoder, canonical when signed), and a wildcard.
  const records = [
    `  - { name: big, type: TXT, ttl: 3, values: ["${'a'.repeat(200)}", "${'b'.repeat(200)}"] }`,
    '  - { name: www, type: CNAME, ttl: 3, value: api.gslb.example.com. }',
    '  - { name: "@", type: MX, ttl: 3, value: "10 mail.gslb.example.com." }',
    '  - { name: mail, type: A, ttl: 3, value: 192.0.2.25 }',
    '  - { name: _sip._tcp, type: SRV, ttl: 3, value: "10 5 5060 mail.gslb.example.com." }',
    '  - { name: "*.wild", type: TXT, ttl: 3, value: "synthesized" }',
  ];
  text = text.replace(/^records:\n/m, `records:\n${records.join('\n')}\n`);
  text += 'dnssec:\n  signers: ["*"]\n  dnskeyTtl: 2\n  propagationDelay: 1\n  parentDsTtl: 2\n  zskLifetime: 0\n';
  writeFileSync(file, text);
  return out;
}

/** A query for `name`/`type` with an OPT record: DO, and CO when asked. */
function rawQuery(name: string, type: number, flags: { do?: boolean; co?: boolean }): Buffer {
  const q = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
  for (const l of name.split('.')) q.push(l.length, ...Buffer.from(l));
  q.push(0, type >> 8, type & 0xff, 0, 1);
  q.push(0, 0, 41, 0x04, 0xd0, 0, 0, (flags.do ? 0x80 : 0) | (flags.co ? 0x40 : 0), 0, 0, 0);
  return Buffer.from(q);
}

function ask(port: number, packet: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => (s.close(), reject(new Error('no reply'))), 3000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(packet, port, '127.0.0.1');
  });
}

describe.skipIf(!enabled)('DNSSEC on arus up', () => {
  let dir: string;
  let db: string;
  let anchor: string;
  let server: Running;

  /** delv's verdict on `name type`, validating from our own trust anchor with Arus as its only server. */
  const delv = async (name: string, type: string, anchorFile = anchor) => {
    const r = await run('delv', [`@127.0.0.1`, '-p', String(server.dnsPort), '-a', anchorFile, `+root=${ZONE}`, name, type]).catch((e: { stdout: string; stderr: string }) => e);
    return `${r.stdout}${r.stderr}`;
  };
  const writeAnchor = (file: string, dsLine: string) => {
    const [owner, , , , tag, alg, digestType, digest] = dsLine.trim().split(/\s+/);
    writeFileSync(file, `trust-anchors { ${owner} static-ds ${tag} ${alg} ${digestType} "${digest}"; };\n`);
    return file;
  };
  const events = async () => {
    const res = await fetch(`${server.api}/v1/events?limit=200`, { headers: { authorization: `Bearer ${ADMIN}` } });
    return ((await res.json()) as { events: { kind: string; subject: string }[] }).events;
  };

  beforeAll(async () => {
    dir = tempDir('arus-dnssec-');
    db = join(dir, 'arus.db');
    const regions = signedRegions(dir);
    expect(arus(['apply', regions, '--db', db]).code).toBe(0);
    const init = arus(['dnssec', 'init', '--db', db]);
    expect(init.code, init.stderr).toBe(0);
    const ds = arus(['dnssec', 'ds', '--db', db]).stdout.split('\n')[0];
    anchor = writeAnchor(join(dir, 'anchor.conf'), ds);
    server = await startArus(['up', '--db', db, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off', '--workers', '1'], { env: { ARUS_ADMIN_TOKEN: ADMIN }, timeoutMs: 30_000 });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('every positive answer validates: steered, pinned, SOA, NS, TXT, DNSKEY, CDS and CDNSKEY', async () => {
    for (const [name, type] of [
      [`api.${ZONE}`, 'A'],
      [`jkt.api.${ZONE}`, 'A'],
      [ZONE, 'SOA'],
      [ZONE, 'NS'],
      [ZONE, 'TXT'],
      [ZONE, 'CAA'],
      [ZONE, 'MX'],
      [`_sip._tcp.${ZONE}`, 'SRV'],
      [`www.${ZONE}`, 'CNAME'],
      [`anything.wild.${ZONE}`, 'TXT'],
      [ZONE, 'DNSKEY'],
      [ZONE, 'CDS'],
      [ZONE, 'CDNSKEY'],
    ]) {
      const out = await delv(name, type);
      expect(out, `${name} ${type}`).toMatch(/^; fully validated$/m);
      expect(out, `${name} ${type}`).toMatch(new RegExp(`\\sIN\\s+RRSIG\\s+${type}\\s`));
    }
  });

  it('negative answers validate: NODATA at a steered and a static name, and a random name that does not exist', async () => {
    for (const [name, type] of [
      [`api.${ZONE}`, 'TXT'],
      [ZONE, 'AAAA'],
      [`other.wild.${ZONE}`, 'A'],
      [`no-${Math.random().toString(36).slice(2)}.${ZONE}`, 'A'],
      [`deep.er.no-${Math.random().toString(36).slice(2)}.${ZONE}`, 'AAAA'],
    ])
      expect(await delv(name, type), `${name} ${type}`).toMatch(/^; negative response, fully validated$/m);
  });

  it('signs a wildcard\'s answer as the name asked, and a CNAME\'s chain as far as the zone goes', async () => {
    const r = dig('127.0.0.1', server.dnsPort, [`x1.wild.${ZONE}`, 'TXT', '+dnssec', '+norec']);
    const sig = r.answers.find((a) => a.type === 'RRSIG')!;
    // Labels: those of the name asked (5), not the wildcard's (4): no closest-encloser proof needed.
    expect(sig.name).toBe(`x1.wild.${ZONE}.`);
    expect(sig.data.split(/\s+/)[2]).toBe('5');
    const chain = await delv(`www.${ZONE}`, 'A');
    expect(chain).toMatch(/^; fully validated$/m);
    expect(chain).toMatch(/\sIN\s+RRSIG\s+CNAME\s/);
    expect(chain).toMatch(/\sIN\s+RRSIG\s+A\s/);
  });

  it('a trust anchor that is not this zone\'s key fails validation: the answers are really checked', async () => {
    const wrong = writeAnchor(join(dir, 'wrong.conf'), `${ZONE}. 3600 IN DS 12345 13 2 ${'AB'.repeat(32)}`);
    expect(await delv(`api.${ZONE}`, 'A', wrong)).toMatch(/resolution failed|no valid|broken trust chain|insecurity proof failed/);
  });

  it('signs the steered answer with the service TTL while serving the health-derived one', () => {
    const r = dig('127.0.0.1', server.dnsPort, [`api.${ZONE}`, 'A', '+dnssec', '+norec', '+subnet=36.66.0.0/24']);
    const sig = r.answers.find((a) => a.type === 'RRSIG');
    expect(sig, r.raw).toBeDefined();
    const [covered, , labels, originalTtl] = sig!.data.split(/\s+/);
    expect([covered, labels, originalTtl]).toEqual(['A', '4', '4']);
    expect(sig!.ttl).toBeLessThanOrEqual(4);
  });

  it('denies a name that does not exist compactly: NOERROR with an NXNAME NSEC, NXDOMAIN only for a client with CO', async () => {
    const name = `nx-${Math.random().toString(36).slice(2)}.${ZONE}`;
    const plain = await ask(server.dnsPort, rawQuery(name, 1, { do: true }));
    expect(plain[3] & 0xf).toBe(0);
    const compact = await ask(server.dnsPort, rawQuery(name, 1, { do: true, co: true }));
    expect(compact[3] & 0xf).toBe(3);
    // The OPT echoes DO and CO.
    expect(compact[compact.length - 4]).toBe(0xc0);
    const r = dig('127.0.0.1', server.dnsPort, [name, 'A', '+dnssec', '+norec']);
    expect(r.status).toBe('NOERROR');
    const nsec = r.authority.find((a) => a.type === 'NSEC');
    expect(nsec?.name).toBe(`${name}.`);
    expect(nsec?.data).toBe(`\\000.${name}. RRSIG NSEC TYPE128`);
  });

  it('answers queries without DO exactly as an unsigned zone does: no RRSIG, no NSEC, NXDOMAIN with the SOA', () => {
    const a = dig('127.0.0.1', server.dnsPort, [`api.${ZONE}`, 'A', '+norec']);
    expect(a.answers.map((x) => x.type)).toEqual(['A', 'A']);
    const nx = dig('127.0.0.1', server.dnsPort, [`nope.${ZONE}`, 'A', '+norec']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.authority.map((x) => x.type)).toEqual(['SOA']);
    expect(nx.raw).not.toMatch(/RRSIG|NSEC/);
  });

  it('keeps a signed reply within the UDP size the client offered, or truncates it so that the client asks over TCP', () => {
    const big = dig('127.0.0.1', server.dnsPort, [`big.${ZONE}`, 'TXT', '+dnssec', '+norec', '+bufsize=512', '+notcp', '+ignore']);
    expect(big.flags).toContain('tc');
    expect(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(big.raw)![1])).toBeLessThanOrEqual(512);
    const roomy = dig('127.0.0.1', server.dnsPort, [`big.${ZONE}`, 'TXT', '+dnssec', '+norec', '+notcp', '+ignore']);
    expect(roomy.flags).not.toContain('tc');
    expect(roomy.answers.map((a) => a.type)).toEqual(['TXT', 'TXT', 'RRSIG']);
    const tcp = dig('127.0.0.1', server.dnsPort, [`big.${ZONE}`, 'TXT', '+dnssec', '+norec', '+bufsize=512']);
    expect(tcp.answers.map((a) => a.type)).toEqual(['TXT', 'TXT', 'RRSIG']);
  });

  it('keeps the ZSK out of every API read: the snapshot an admin reads carries the key RRsets, never a private key', async () => {
    const res = await fetch(`${server.api}/v1/snapshots/current`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const text = await res.text();
    expect(JSON.parse(text).state.dnssec.keyRrsets).toHaveLength(3);
    expect(text).not.toMatch(/PRIVATE KEY|privateKey|"zsk"/);
  });

  it('rolls the ZSK by pre-publication: published, then signing, then gone, validating at every step, each step in the history', async () => {
    const before = dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+norec']).answers.length;
    const roll = arus(['dnssec', 'roll', '--zsk', '--db', db]);
    expect(roll.code, roll.stderr).toBe(0);
    const tag = Number(/ZSK (\d+) \(zsk-/.exec(roll.stdout)![1]);
    // Published: in DNSKEY, signing nothing yet.
    await until(() => dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+norec']).answers.length, (n) => n === before + 1);
    const signer = () => Number(dig('127.0.0.1', server.dnsPort, [ZONE, 'SOA', '+dnssec', '+norec']).answers.find((a) => a.type === 'RRSIG')!.data.split(/\s+/)[6]);
    expect(signer()).not.toBe(tag);
    expect(await delv(`api.${ZONE}`, 'A')).toMatch(/^; fully validated$/m);
    // Ipub = Dprp + TTL(DNSKEY) = 3 s later it signs.
    await until(signer, (t) => t === tag, 15_000, 250);
    expect(await delv(`api.${ZONE}`, 'A')).toMatch(/^; fully validated$/m);
    // Iret = Dprp + the largest TTL (4 s) later the old ZSK leaves DNSKEY.
    await until(() => dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+norec']).answers.length, (n) => n === before, 20_000, 250);
    expect(await delv(`nope.${ZONE}`, 'A')).toMatch(/^; negative response, fully validated$/m);
    const steps = ['dnssec.zsk.published', 'dnssec.zsk.active', 'dnssec.zsk.retired', 'dnssec.zsk.removed'];
    await until(async () => (await events()).map((e) => e.kind), (k) => steps.every((x) => k.includes(x)), 10_000, 250);
  }, 60_000);

  it('rolls the KSK with CDS and CDNSKEY: both KSKs sign DNSKEY, the new DS validates once the parent has it, the old KSK goes', async () => {
    const roll = arus(['dnssec', 'roll', '--ksk', '--db', db]);
    expect(roll.code, roll.stderr).toBe(0);
    const newDs = roll.stdout.split('\n').find((l) => /\sIN DS\s/.test(l))!;
    const newTag = newDs.split(/\s+/)[4];
    // Too early: the new key is not in every cache yet.
    const early = arus(['dnssec', 'roll', '--ksk', '--ds-published', '--db', db]);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/not in every cache's DNSKEY set until/);
    const cds = await until(() => dig('127.0.0.1', server.dnsPort, [ZONE, 'CDS', '+norec']).answers.map((a) => a.data.split(/\s+/)[0]), (tags) => tags.includes(newTag));
    expect(cds).toHaveLength(2);
    // The new DS alone validates (DNSKEY carries its signature too), and so does the old one.
    const newAnchor = writeAnchor(join(dir, 'new.conf'), newDs);
    expect(await delv(`api.${ZONE}`, 'A', newAnchor)).toMatch(/^; fully validated$/m);
    expect(await delv(`api.${ZONE}`, 'A')).toMatch(/^; fully validated$/m);
    // A small client's UDP size is respected: the bigger DNSKEY set fits in 512 octets or comes back truncated; whole over TCP.
    const small = dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+dnssec', '+norec', '+bufsize=512', '+notcp', '+ignore']);
    expect(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(small.raw)![1])).toBeLessThanOrEqual(512);
    if (!small.flags.includes('tc')) expect(small.answers.filter((a) => a.type === 'RRSIG')).toHaveLength(2);
    const whole = dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+dnssec', '+norec', '+tcp']);
    expect(whole.answers.filter((a) => a.type === 'RRSIG')).toHaveLength(2);
    const published = await until(() => arus(['dnssec', 'roll', '--ksk', '--ds-published', '--db', db]), (r) => r.code === 0, 10_000, 500);
    expect(published.stdout).toMatch(/is the active KSK now/);
    await until(() => dig('127.0.0.1', server.dnsPort, [ZONE, 'CDS', '+norec']).answers.length, (n) => n === 1);
    // Dprp + the parent's DS TTL later the old KSK is gone, and only the new DS validates.
    await until(() => dig('127.0.0.1', server.dnsPort, [ZONE, 'DNSKEY', '+dnssec', '+norec']).answers.filter((a) => a.type === 'RRSIG').length, (n) => n === 1, 15_000, 250);
    expect(await delv(`api.${ZONE}`, 'A', newAnchor)).toMatch(/^; fully validated$/m);
    expect(await delv(`api.${ZONE}`, 'A')).not.toMatch(/^; fully validated$/m);
    const steps = ['dnssec.ksk.published', 'dnssec.ksk.active', 'dnssec.ksk.retired', 'dnssec.ksk.removed'];
    await until(async () => (await events()).map((e) => e.kind), (k) => steps.every((x) => k.includes(x)), 10_000, 250);
  }, 60_000);
});
