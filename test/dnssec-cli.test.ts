// `arus dnssec init|status|ds` on a real database file: the keys made and
// stored (the private key loadable, never printed), the DS record the same as
// BIND's dnssec-dsfromkey makes of the DNSKEY that `ds` prints, a second
// init refused, and clear errors for a bad algorithm or a missing zone.
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { createDnssecKeyStore } from '../src/db/dnssec-keys.js';
import { FLAGS, signingKeyFromPem } from '../src/dnssec/keys.js';
import { ROOT, arus, tempDir } from './helpers/arus.js';

const hasBind = spawnSync('dnssec-dsfromkey', ['-V']).status === 0;
const requireBind = process.env.CI ? true : hasBind;

function configured(): string {
  const db = join(tempDir(), 'arus.db');
  expect(arus(['apply', join(ROOT, 'regions'), '--db', db]).code).toBe(0);
  return db;
}

describe('arus dnssec', () => {
  it('init makes a KSK and a ZSK for the configured zone, stores them, and prints the DS; status lists them without a private key', () => {
    const db = configured();
    const init = arus(['dnssec', 'init', '--db', db]);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/^ksk-\d+ +KSK +\d+ +13 +active/m);
    expect(init.stdout).toMatch(/^zsk-\d+ +ZSK +\d+ +13 +active/m);
    // With the TTL the KSK rollover waits out for the parent's DS (zone.dnssec.parentDsTtl, a day by default).
    expect(init.stdout).toMatch(/^gslb\.example\.com\. 86400 IN DS \d+ 13 2 [0-9A-F]{64}$/m);
    const status = arus(['dnssec', 'status', '--db', db]);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n').filter((l) => /active/.test(l))).toHaveLength(2);
    for (const out of [init.stdout, status.stdout]) expect(out).not.toMatch(/PRIVATE|BEGIN/);
    // The database now holds private keys: its files are the owner's alone.
    expect(statSync(db).mode & 0o777).toBe(0o600);
    // Stored with a private key that is the published key's.
    const d = openDatabase(db);
    try {
      const [ksk, zsk] = createDnssecKeyStore(d).live('gslb.example.com');
      expect(signingKeyFromPem(ksk.privateKey, 13, FLAGS.KSK).rdata.toString('base64')).toBe(ksk.dnskey);
      expect(signingKeyFromPem(zsk.privateKey, 13, FLAGS.ZSK).tag).toBe(zsk.tag);
      // SQLite makes the write-ahead log with the database's mode.
      expect(statSync(`${db}-wal`).mode & 0o777).toBe(0o600);
    } finally {
      d.$client.close();
    }
    const again = arus(['dnssec', 'init', '--db', db]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/has DNSSEC keys already .*arus dnssec status/);
  });

  it.skipIf(!requireBind)('ds prints the DS record dnssec-dsfromkey makes of the DNSKEY it prints (Ed25519 here)', () => {
    const db = configured();
    expect(arus(['dnssec', 'init', '--algorithm', 'ed25519', '--db', db]).code).toBe(0);
    const ds = arus(['dnssec', 'ds', '--db', db]);
    expect(ds.code).toBe(0);
    const [ours, dnskey] = ds.stdout.trim().split('\n');
    expect(dnskey).toMatch(/^; from gslb\.example\.com\. 3600 IN DNSKEY 257 3 15 /);
    const file = join(tempDir(), 'dnskey.zone');
    writeFileSync(file, `${dnskey.slice('; from '.length)}\n`);
    const bind = spawnSync('dnssec-dsfromkey', ['-2', '-f', file, 'gslb.example.com'], { encoding: 'utf8' });
    expect(bind.status).toBe(0);
    expect(bind.stdout.trim().replace(/\s+/g, ' ')).toBe(ours.replace(' 86400 ', ' '));
  });

  it('refuses a bad algorithm and a database without a zone, naming the flag', () => {
    const bad = arus(['dnssec', 'init', '--algorithm', 'rsasha1', '--db', configured()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--algorithm must be ecdsap256sha256 or ed25519, not "rsasha1"/);
    const empty = arus(['dnssec', 'status', '--db', join(tempDir(), 'empty.db')]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/holds no configuration yet .*--zone NAME/);
    expect(arus(['dnssec', 'status', '--zone', 'other.example', '--db', join(tempDir(), 'empty2.db')]).stdout).toMatch(/other\.example: no DNSSEC keys \(arus dnssec init makes them\)/);
  });

  it('refuses to serve a signed zone from the database (arus dns --db cannot sign), naming what to run instead', () => {
    const db = configured();
    expect(arus(['dnssec', 'init', '--db', db]).code).toBe(0);
    const r = arus(['dns', '--db', db, '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/gslb\.example\.com is signed .* cannot sign: run this node with --control URL and a dns token whose node is in zone\.dnssec\.signers/);
  });

  it('roll refuses without one of --zsk or --ksk, and a KSK made active before the parent can have its DS', () => {
    const db = configured();
    expect(arus(['dnssec', 'init', '--db', db]).code).toBe(0);
    const neither = arus(['dnssec', 'roll', '--db', db]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/one of --zsk or --ksk/);
    const early = arus(['dnssec', 'roll', '--ksk', '--ds-published', '--db', db]);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/no KSK being rolled in: arus dnssec roll --ksk publishes one first/);
    const started = arus(['dnssec', 'roll', '--ksk', '--db', db]);
    expect(started.stdout).toMatch(/KSK rollover started: KSK \d+ \(ksk-\d+\) published/);
    expect(arus(['dnssec', 'roll', '--ksk', '--db', db]).stdout).toMatch(/a KSK rollover is under way: .* not ready until /);
    // The DS to give the parent: both KSKs while the new one rolls in.
    expect(arus(['dnssec', 'ds', '--db', db]).stdout.split('\n').filter((l) => / IN DS /.test(l))).toHaveLength(2);
  });
});
