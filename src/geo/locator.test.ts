import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countryLocation } from './countries.js';
import { defaultDatabasePath } from './geoip.js';
import { createLocator } from './locator.js';
import { Typed, writeMmdb } from './test-mmdb-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'arus-geo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const at = (cc: string) => countryLocation(cc)!;

describe('the shipped database (ip-location-db geo-whois-asn-country)', () => {
  const locator = createLocator({});

  // [address, country, scope]
  it.each([
    ['36.66.0.1', 'ID', 11],
    ['165.21.0.1', 'SG', 16],
    ['171.96.0.1', 'TH', 13],
    ['112.198.0.1', 'PH', 16],
    ['175.136.0.1', 'MY', 13],
    ['14.160.0.1', 'VN', 11],
    ['2001:4450::1', 'PH', 29],
    ['2405:4800::1', 'VN', 30],
  ])('%s → %s /%i', (ip, country, scope) => {
    expect(locator.locate(ip, ip.includes(':') ? 128 : 32, 'resolver')).toStrictEqual({
      ip,
      source: 'resolver',
      country,
      location: at(country),
      scope,
      via: `geoip ${country} (/${scope})`,
    });
  });

  it('an address in no record is unknown, with the empty block as scope', () => {
    expect(locator.locate('10.0.0.1', 32, 'resolver')).toStrictEqual({
      ip: '10.0.0.1',
      source: 'resolver',
      scope: 8,
      via: 'unknown (not in GeoIP database)',
    });
  });

  it('locates an ECS subnet by its masked address', () => {
    expect(locator.locate('36.66.0.0', 24, 'ecs')).toMatchObject({ ip: '36.66.0.0', source: 'ecs', country: 'ID', scope: 11 });
  });

  // The database itself has nothing at ::ffff:36.66.0.1 (its IPv4 data sits under ::/96).
  it.each([
    ['::ffff:36.66.0.1', 128],
    ['::FFFF:36.66.0.1', 128],
    ['::ffff:2442:1', 128],
    ['0:0:0:0:0:ffff:36.66.0.0', 120],
  ])('IPv4-mapped %s is located as IPv4', (ip, prefix) => {
    const facts = locator.locate(ip, prefix, 'ecs');
    expect(facts).toMatchObject({ country: 'ID', scope: 11, via: 'geoip ID (/11)' });
    expect(facts.ip).toMatch(/^36\.66\.0\.[01]$/);
  });

  it('uses the bundled file when no database is given', () => {
    expect(defaultDatabasePath()).toMatch(/@ip-location-db[/\\]geo-whois-asn-country-mmdb[/\\]geo-whois-asn-country\.mmdb$/);
    const explicit = createLocator({ database: defaultDatabasePath() });
    expect(explicit.locate('171.96.0.1', 32, 'resolver')).toStrictEqual(locator.locate('171.96.0.1', 32, 'resolver'));
  });

  it.each([
    ['example.com', 32, /"example\.com" is not an IP address/],
    ['', 32, /"" is not an IP address/],
    ['36.66.0.1', 33, /prefix 33 is out of range/],
    ['36.66.0.1', -1, /prefix -1 is out of range/],
    ['2001:db8::', 129, /prefix 129 is out of range/],
    ['36.66.0.1', 1.5, /prefix 1.5 is out of range/],
  ])('locate(%j, %s) throws', (ip, prefix, message) => {
    expect(() => locator.locate(ip, prefix, 'ecs')).toThrow(message);
  });
});

describe('nets overrides before the database', () => {
  const locator = createLocator({
    nets: {
      '10.0.0.0/8': { region: 'sg' },
      '10.1.0.0/16': { region: 'bkk' },
      '100.64.0.0/10': { country: 'ID' },
      '192.168.0.0/16': { region: 'sg' },
      '36.70.0.0/16': { region: 'jkt' },
      '127.1.0.0/16': { region: 'sg' },
      '2001:db8::/32': { region: 'mnl' },
      '2001:db8:1::/48': { country: 'PH' },
    },
  });

  // [address, expected facts beyond ip and source]
  it.each([
    ['10.1.0.1', { region: 'bkk', scope: 16, via: 'nets 10.1.0.0/16 → region bkk' }],
    ['10.0.0.1', { region: 'sg', scope: 16, via: 'nets 10.0.0.0/8 → region sg, narrowed to /16 by nets' }],
    ['10.200.0.1', { region: 'sg', scope: 9, via: 'nets 10.0.0.0/8 → region sg, narrowed to /9 by nets' }],
    ['100.64.0.1', { country: 'ID', location: at('ID'), scope: 10, via: 'nets 100.64.0.0/10 → country ID' }],
    // The shipped data puts 192.168.0.0/16 in AU; the override wins.
    ['192.168.1.1', { region: 'sg', scope: 16, via: 'nets 192.168.0.0/16 → region sg' }],
    ['36.70.1.1', { region: 'jkt', scope: 16, via: 'nets 36.70.0.0/16 → region jkt' }],
    // ID /11 holds the jkt override: the scope stops short of it.
    ['36.66.0.1', { country: 'ID', location: at('ID'), scope: 14, via: 'geoip ID (/11), narrowed to /14 by nets' }],
    ['36.80.0.1', { country: 'ID', location: at('ID'), scope: 12, via: 'geoip ID (/11), narrowed to /12 by nets' }],
    ['14.160.0.1', { country: 'VN', location: at('VN'), scope: 11, via: 'geoip VN (/11)' }],
    ['127.0.0.1', { scope: 16, via: 'unknown (not in GeoIP database), narrowed to /16 by nets' }],
    ['2001:db8::1', { region: 'mnl', scope: 48, via: 'nets 2001:db8::/32 → region mnl, narrowed to /48 by nets' }],
    ['2001:db8:8000::1', { region: 'mnl', scope: 33, via: 'nets 2001:db8::/32 → region mnl, narrowed to /33 by nets' }],
    ['2001:db8:1:2::1', { country: 'PH', location: at('PH'), scope: 48, via: 'nets 2001:db8:1::/48 → country PH' }],
    ['::ffff:10.1.2.3', { region: 'bkk', scope: 16 }],
  ])('%s', (ip, expected) => {
    const facts = locator.locate(ip, ip.includes(':') ? 128 : 32, 'ecs');
    if ('via' in expected) expect(facts).toStrictEqual({ ip, source: 'ecs', ...expected });
    else expect(facts).toMatchObject({ ip: ip.replace('::ffff:', ''), ...expected });
  });

  it('rejects a bad entry at creation', () => {
    expect(() => createLocator({ nets: { '10.0.0.0/40': { region: 'sg' } } })).toThrow(/nets: "10\.0\.0\.0\/40" is not a network/);
  });
});

describe('MaxMind City-shaped database', () => {
  const path = join(dir, 'GeoLite2-City-test.mmdb');
  const names = (en: string) => ({ en, ja: `${en}*` });
  writeFileSync(
    path,
    writeMmdb({
      ipVersion: 6,
      recordSize: 28,
      databaseType: 'GeoLite2-City',
      entries: [
        {
          network: '1.2.0.0/16',
          data: {
            city: { geoname_id: 1642911, names: names('Jakarta') },
            continent: { code: 'AS', geoname_id: 6255147, names: names('Asia') },
            country: { geoname_id: 1643084, iso_code: 'ID', names: names('Indonesia') },
            location: { accuracy_radius: new Typed('uint16', 20), latitude: -6.2146, longitude: 106.8451, time_zone: 'Asia/Jakarta' },
            registered_country: { geoname_id: 1643084, iso_code: 'ID', names: names('Indonesia') },
          },
        },
        { network: '1.2.3.0/24', data: { country: { iso_code: 'SG', names: names('Singapore') }, location: { accuracy_radius: new Typed('uint16', 500) } } },
        { network: '1.3.0.0/16', data: { registered_country: { iso_code: 'TH', names: names('Thailand') }, traits: { is_anycast: true } } },
        { network: '1.4.0.0/16', data: { continent: { code: 'AS', names: names('Asia') } } },
        {
          network: '2001:db8::/32',
          data: { city: { names: names('Manila') }, country: { iso_code: 'PH' }, location: { latitude: 14.5995, longitude: 120.9842 } },
        },
      ],
    }),
  );
  const locator = createLocator({ database: path });

  // [address, expected facts beyond ip and source]
  it.each([
    ['1.2.200.1', { country: 'ID', location: { lat: -6.2146, lon: 106.8451 }, scope: 17, via: 'geoip ID @-6.21,106.85 (/17)' }],
    ['1.2.0.1', { country: 'ID', location: { lat: -6.2146, lon: 106.8451 }, scope: 23, via: 'geoip ID @-6.21,106.85 (/23)' }],
    ['1.2.3.4', { country: 'SG', location: at('SG'), scope: 24, via: 'geoip SG (/24)' }],
    ['1.3.0.1', { country: 'TH', location: at('TH'), scope: 16, via: 'geoip TH (/16)' }],
    ['1.4.0.1', { scope: 16, via: 'unknown (GeoIP record names no country)' }],
    ['9.9.9.9', { scope: 5, via: 'unknown (not in GeoIP database)' }],
    ['2001:db8::1', { country: 'PH', location: { lat: 14.5995, lon: 120.9842 }, scope: 32, via: 'geoip PH @14.6,120.98 (/32)' }],
    ['2001:db9::1', { scope: 32, via: 'unknown (not in GeoIP database)' }],
  ])('%s', (ip, expected) => {
    expect(locator.locate(ip, ip.includes(':') ? 128 : 32, 'resolver')).toStrictEqual({ ip, source: 'resolver', ...expected });
    // Again: the second answer comes from the memo and must be the same.
    expect(locator.locate(ip, ip.includes(':') ? 128 : 32, 'resolver')).toStrictEqual({ ip, source: 'resolver', ...expected });
  });

  it('gives IPv4 scopes for IPv4 in an IPv6 tree, mapped input too', () => {
    expect(locator.locate('::ffff:1.2.3.4', 128, 'ecs')).toStrictEqual({
      ip: '1.2.3.4',
      source: 'ecs',
      country: 'SG',
      location: at('SG'),
      scope: 24,
      via: 'geoip SG (/24)',
    });
  });

  it('narrows around an override inside a record block', () => {
    const withNets = createLocator({ database: path, nets: { '1.2.3.128/25': { region: 'jkt' } } });
    expect(withNets.locate('1.2.3.4', 32, 'ecs')).toMatchObject({ country: 'SG', scope: 25, via: 'geoip SG (/24), narrowed to /25 by nets' });
    expect(withNets.locate('1.2.3.200', 32, 'ecs')).toMatchObject({ region: 'jkt', scope: 25 });
  });
});

describe('DB-IP / ip-location-db flat-shaped database (IPv4 only)', () => {
  const path = join(dir, 'dbip-city-lite-test.mmdb');
  writeFileSync(
    path,
    writeMmdb({
      ipVersion: 4,
      recordSize: 24,
      databaseType: 'dbip-city-lite',
      entries: [
        { network: '1.2.0.0/16', data: { city: 'Bangkok', country_code: 'TH', latitude: 13.7563, longitude: 100.5018, state1: 'Bangkok' } },
        { network: '1.3.0.0/16', data: { country_code: 'MY' } },
        { network: '1.3.128.0/17', data: { country_code: 'MY' } }, // same record, its own block
      ],
    }),
  );
  const locator = createLocator({ database: path, nets: { '2001:db8:1::/48': { region: 'jkt' } } });

  it.each([
    ['1.2.3.4', { country: 'TH', location: { lat: 13.7563, lon: 100.5018 }, scope: 16, via: 'geoip TH @13.76,100.5 (/16)' }],
    ['1.3.0.1', { country: 'MY', location: at('MY'), scope: 17, via: 'geoip MY (/17)' }],
    ['1.3.200.1', { country: 'MY', location: at('MY'), scope: 17, via: 'geoip MY (/17)' }],
    ['1.1.1.1', { scope: 15, via: 'unknown (not in GeoIP database)' }],
    // An IPv4-only tree says nothing about IPv6; only the overrides bound the scope.
    ['2001:db8::1', { scope: 48, via: 'unknown (IPv6 address, IPv4-only GeoIP database), narrowed to /48 by nets' }],
    ['2400:cb00::1', { scope: 6, via: 'unknown (IPv6 address, IPv4-only GeoIP database), narrowed to /6 by nets' }],
  ])('%s', (ip, expected) => {
    expect(locator.locate(ip, ip.includes(':') ? 128 : 32, 'resolver')).toStrictEqual({ ip, source: 'resolver', ...expected });
  });

  it('without nets an IPv6 address is unknown with scope 0', () => {
    expect(createLocator({ database: path }).locate('2001:db8::1', 56, 'ecs')).toMatchObject({ scope: 0 });
  });
});

describe('a database that cannot be opened', () => {
  it.each([
    ['a missing file', join(dir, 'no-such.mmdb'), /cannot read it/],
    ['a directory', dir, /cannot read it/],
    ['a text file', join(dir, 'garbage.mmdb'), /not a readable MaxMind DB/],
    ['an empty file', join(dir, 'empty.mmdb'), /not a readable MaxMind DB/],
    ['a truncated database', join(dir, 'truncated.mmdb'), /not a readable MaxMind DB/],
  ])('%s: the error names the file', (_what, path, reason) => {
    writeFileSync(join(dir, 'garbage.mmdb'), 'this is not a database\n'.repeat(100));
    writeFileSync(join(dir, 'empty.mmdb'), '');
    const whole = writeMmdb({ ipVersion: 6, entries: [{ network: '1.2.0.0/16', data: { country_code: 'TH' } }] });
    writeFileSync(join(dir, 'truncated.mmdb'), Buffer.concat([whole.subarray(0, 40), whole.subarray(whole.length - 200)]));
    let error: Error | undefined;
    try {
      createLocator({ database: path });
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toContain(`GeoIP database ${path}:`);
    expect(error?.message).toMatch(reason);
  });
});
