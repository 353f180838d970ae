// The static records' schema: what it takes, and every refusal naming its field.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { thrownConfigError } from './config-error.case.js';
import { loadConfig, parseZoneDoc, validateConfig } from './load.js';
import type { RecordInput } from './records.js';

const base = loadConfig([fileURLToPath(new URL('../../regions', import.meta.url))]);
const zoneWith = (records: unknown[]) => parseZoneDoc({ ...base.zone, records }, 'zone.yaml');
const issues = (records: unknown[]) => thrownConfigError(() => zoneWith(records)).issues.map((i) => `${i.path}: ${i.message}`);

describe('records: what the schema takes', () => {
  it('one entry per RRset, `value` as shorthand for one of `values`, type in any case, TTL 300 by default', () => {
    const zone = zoneWith([
      { name: 'WWW', type: 'cname', value: 'api.gslb.example.com.' },
      { name: '@', type: 'CAA', value: '0 issue "letsencrypt.org"' },
      { name: '_acme-challenge', type: 'TXT', values: ['abc', 'def'], ttl: 60 },
      { name: 'web', type: 'A', values: ['192.0.2.1', '192.0.2.2'] },
      { name: 'web', type: 'AAAA', value: '2001:db8::1' },
      { name: 'mail.gslb.example.com.', type: 'MX', values: ['10 mx.example.net', '0 .'] },
      { name: '_sip._udp', type: 'SRV', value: '10 5 5060 sip.example.net.' },
      { name: '*.dev', type: 'A', value: '192.0.2.3' },
      { name: 'long', type: 'TXT', value: 'x'.repeat(4000) },
      { name: 'caa', type: 'CAA', values: ['128 issuewild ";"', '0 iodef "https://example.com/caa"', '0 issue letsencrypt.org'] },
    ]);
    expect(zone.records![0]).toEqual({ name: 'www', type: 'CNAME', ttl: 300, values: ['api.gslb.example.com.'] });
    expect(zone.records![2]).toEqual({ name: '_acme-challenge', type: 'TXT', ttl: 60, values: ['abc', 'def'] });
    // What the schema writes parses again to the same (the store re-reads what it wrote).
    expect(parseZoneDoc(zone)).toEqual(zone);
  });

  it('a zone without records has none (the field stays absent)', () => {
    const { records, ...without } = base.zone;
    expect(records?.map((r) => `${r.name} ${r.type}`)).toEqual(['@ CAA', '@ TXT']); // regions/zone.yaml's examples
    expect(parseZoneDoc(without).records).toBeUndefined();
  });
});

describe('records: values that do not parse for their type', () => {
  it.each<[string, RecordInput, string]>([
    ['an A value that is not an IPv4 address', { name: 'a', type: 'A', value: '300.1.1.1' }, 'records[0].value: "300.1.1.1" must be an IPv4 address'],
    ['an IPv6 address in A', { name: 'a', type: 'A', value: '2001:db8::1' }, 'records[0].value: 2001:db8::1 is an IPv6 address: use type AAAA'],
    ['an IPv4 address in AAAA', { name: 'a', type: 'AAAA', values: ['192.0.2.1'] }, 'records[0].values[0]: 192.0.2.1 is an IPv4 address: use type A'],
    ['an MX preference over 65535', { name: 'm', type: 'MX', value: '70000 mx.example.net' }, 'records[0].value: preference "70000" must be a whole number from 0 to 65535'],
    ['an MX without exchange', { name: 'm', type: 'MX', value: '10' }, 'records[0].value: "10" must be "PREFERENCE EXCHANGE"'],
    ['a relative MX exchange', { name: 'm', type: 'MX', value: '10 mail' }, 'records[0].value: exchange: "mail" must be a fully qualified name'],
    ['CAA flags with reserved bits', { name: 'c', type: 'CAA', value: '1 issue "ca.example"' }, 'records[0].value: flags "1" must be 0, or 128'],
    ['a CAA tag that is not alphanumeric', { name: 'c', type: 'CAA', value: '0 is-sue "ca.example"' }, 'records[0].value: tag "is-sue" must be 1 to 15 letters or digits'],
    ['a CAA issue value that is not a domain', { name: 'c', type: 'CAA', value: '0 issue "not a domain"' }, "records[0].value: issue value \"not a domain\" must be a CA's domain"],
    ['a CAA iodef that is not a URL', { name: 'c', type: 'CAA', value: '0 iodef "security"' }, 'records[0].value: iodef value "security" must be a mailto: or http(s):// URL'],
    ['an SRV port that is not a number', { name: '_x._tcp', type: 'SRV', value: '10 5 http web.example.net.' }, 'records[0].value: port "http" must be a whole number from 0 to 65535'],
    ['an SRV with three fields', { name: '_x._tcp', type: 'SRV', value: '10 5 443' }, 'records[0].value: "10 5 443" must be "PRIORITY WEIGHT PORT TARGET"'],
    ['a TXT value over 4000 octets', { name: 't', type: 'TXT', value: 'é'.repeat(2001) }, 'records[0].value: 4002 octets: a TXT value holds at most 4000 (split into strings of 255)'],
    ['a CNAME with two values', { name: 'w', type: 'CNAME', values: ['a.example.net', 'b.example.net'] }, 'records[0].values: a CNAME RRset holds one record'],
    ['a CNAME to a single label', { name: 'w', type: 'CNAME', value: 'web' }, 'records[0].value: "web" must be a fully qualified name'],
    ['the same value twice', { name: 'a', type: 'A', values: ['192.0.2.1', '192.0.2.1'] }, 'records[0].values[1]: the same value as values[0]'],
    ['the same IPv6 address spelt twice', { name: 'a', type: 'AAAA', values: ['2001:db8::1', '2001:DB8:0::1'] }, 'records[0].values[1]: the same value as values[0]'],
    ['both value and values', { name: 'a', type: 'A', value: '192.0.2.1', values: ['192.0.2.2'] }, 'records[0].value: give value (one) or values (several), not both'],
    ['neither value nor values', { name: 'a', type: 'A' }, 'records[0].values: is required (or value, for one)'],
    ['an unknown type', { name: 'a', type: 'NS', value: 'ns.example.net' }, 'records[0].type: must be one of A, AAAA, CNAME, TXT, CAA, MX, SRV'],
    ['a TTL over a week', { name: 'a', type: 'A', value: '192.0.2.1', ttl: 604_801 }, 'records[0].ttl:'],
    ['an unknown field', { name: 'a', type: 'A', value: '192.0.2.1', priority: 1 } as RecordInput, 'records[0].priority: unknown field'],
  ])('%s', (_, record, want) => {
    expect(issues([record]).join('\n')).toContain(want);
  });
});

describe('records: what the zone refuses', () => {
  it.each<[string, RecordInput[], string]>([
    ['a record outside the zone', [{ name: 'www.example.org.', type: 'A', value: '192.0.2.1' }], 'records[0].name: www.example.org. is outside the zone gslb.example.com'],
    ['a relative name that ends with the apex', [{ name: 'www.gslb.example.com', type: 'A', value: '192.0.2.1' }], 'records[0].name: ends with the apex but has no final dot'],
    ['a wildcard label that is not the leftmost', [{ name: 'a.*.dev', type: 'A', value: '192.0.2.1' }], 'records[0].name: a * label is a wildcard only as the leftmost label'],
    ['a bad label', [{ name: 'we b', type: 'A', value: '192.0.2.1' }], 'records[0].name: label "we b" must be'],
    ['a service name', [{ name: 'api', type: 'TXT', value: 'x' }], 'records[0].name: api.gslb.example.com is the name of service api'],
    ["a name server's glue name", [{ name: 'ns1', type: 'A', value: '192.0.2.1' }], "records[0].name: ns1.gslb.example.com is a name server's name"],
    ['a CNAME at the apex', [{ name: '@', type: 'CNAME', value: 'lb.example.net' }], 'records[0].type: a CNAME cannot be at the apex'],
    [
      'a CNAME beside other data',
      [
        { name: 'www', type: 'TXT', value: 'x' },
        { name: 'www.gslb.example.com.', type: 'CNAME', value: 'lb.example.net' },
      ],
      'records[1].type: a CNAME cannot be beside other data (RFC 2181 §10.1): www.gslb.example.com also has TXT in records[0]',
    ],
    [
      'the same RRset twice (one relative, one absolute)',
      [
        { name: 'www', type: 'A', value: '192.0.2.1' },
        { name: 'www.gslb.example.com.', type: 'A', value: '192.0.2.2' },
      ],
      'records[1].name: records[0] is the same RRset (www.gslb.example.com A): list every value in one entry',
    ],
    ['an RRset too big for a DNS message', [{ name: 't', type: 'TXT', values: Array.from({ length: 20 }, (_, i) => `${i}${'x'.repeat(3990)}`) }], 'records[0].values: the RRset takes'],
  ])('%s', (_, records, want) => {
    expect(issues(records).join('\n')).toContain(want);
  });

  it('a TXT at a name below a service (DNS-01 for it) and at a name server name is fine', () => {
    expect(() => zoneWith([{ name: '_acme-challenge.api', type: 'TXT', value: 'x' }, { name: 'ns1', type: 'TXT', value: 'x' }])).not.toThrow();
  });

  it("a region-pinned service name is refused across documents, also when a region is added later", () => {
    const zone = zoneWith([{ name: 'jkt.api', type: 'A', value: '192.0.2.1' }, { name: 'hcm.api', type: 'TXT', value: 'x' }]);
    const err = thrownConfigError(() => validateConfig({ zone, regions: base.regions }));
    expect(err.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(['zone.records[0].name: jkt.api.gslb.example.com is the pinned name of service api in region jkt: steer() answers it']);
    const hcm = { ...base.regions[0], id: 'hcm' };
    expect(thrownConfigError(() => validateConfig({ zone, regions: [...base.regions, hcm] })).message).toMatch(/records\[1\]\.name: hcm\.api\.gslb\.example\.com is the pinned name of service api in region hcm/);
    // A service limited to some regions has no pinned names in the others.
    const limited = parseZoneDoc({ ...zone, records: [zone.records![1]], services: [{ ...zone.services[0], regions: ['sg'] }] });
    expect(() => validateConfig({ zone: limited, regions: [...base.regions, hcm] })).not.toThrow();
  });
});
