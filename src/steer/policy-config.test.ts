// The failover and weighted policies' settings: the service schema and the cross-document checks.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { thrownConfigError } from '../config/config-error.case.js';
import { loadConfig, loadDocuments, parseZoneDoc, validateConfig } from '../config/load.js';
import { crossCheck, serviceSchema, type ZoneInput } from '../config/schema.js';

const regionsDir = fileURLToPath(new URL('../../regions', import.meta.url));

const zoneWith = (service: Record<string, unknown>): ZoneInput => ({
  apex: 'gslb.example.com',
  nameservers: [{ name: 'ns1.gslb.example.com', addresses: ['192.0.2.53'] }],
  soa: { rname: 'hostmaster.example.com' },
  services: [{ name: 'api', ...service }],
  defaultRegion: 'sg',
});

describe('service policies: accepted', () => {
  it('keeps geo the default, with no weights', () => {
    const s = serviceSchema.parse({ name: 'api' });
    expect(s.policy).toBe('geo');
    expect(s.weights).toBeUndefined();
    expect(loadConfig([regionsDir]).zone.services[0].policy).toBe('geo');
  });

  it.each([
    { name: 'failover with a priority list', service: { policy: 'failover', regions: ['jkt', 'sg'] } },
    { name: 'failover with one region', service: { policy: 'failover', regions: ['bkk'] } },
    { name: 'weighted over every region', service: { policy: 'weighted', weights: { sg: 70, jkt: 30 } } },
    { name: 'weighted with a weight-0 standby', service: { policy: 'weighted', weights: { sg: 1, jkt: 0 } } },
    { name: 'weighted within its regions', service: { policy: 'weighted', regions: ['sg', 'jkt', 'mnl'], weights: { sg: 5, mnl: 1 } } },
    { name: 'latency, as before', service: { policy: 'latency', regions: ['sg', 'jkt'] } },
  ])('$name', ({ service }) => {
    expect(serviceSchema.safeParse({ name: 'api', ...service }).error?.issues).toBeUndefined();
    expect(() => parseZoneDoc(zoneWith(service))).not.toThrow();
  });
});

// Each case: a service, and the one error it must give, as the zone's document reports it.
const rejected: { name: string; service: Record<string, unknown>; error: string }[] = [
  { name: 'failover without regions', service: { policy: 'failover' }, error: 'services[0].regions: required for policy failover: the regions in priority order, first choice first' },
  { name: 'failover with no region', service: { policy: 'failover', regions: [] }, error: 'services[0].regions: policy failover needs at least one region' },
  { name: 'a region twice in a priority list', service: { policy: 'failover', regions: ['jkt', 'sg', 'jkt'] }, error: 'services[0].regions[2]: duplicate region "jkt"' },
  { name: 'weighted without weights', service: { policy: 'weighted' }, error: 'services[0].weights: required for policy weighted: a share per region, such as { sg: 70, jkt: 30 }' },
  { name: 'weighted with every weight 0', service: { policy: 'weighted', weights: { sg: 0, jkt: 0 } }, error: 'services[0].weights: at least one region needs a weight above 0' },
  { name: 'weighted with no weights at all', service: { policy: 'weighted', weights: {} }, error: 'services[0].weights: at least one region needs a weight above 0' },
  { name: 'a negative weight', service: { policy: 'weighted', weights: { sg: 70, jkt: -1 } }, error: 'services[0].weights.jkt: Too small: expected number to be >=0' },
  { name: 'a fractional weight', service: { policy: 'weighted', weights: { sg: 0.5 } }, error: 'services[0].weights.sg: Invalid input: expected int, received number' },
  { name: 'a weight that is not a number', service: { policy: 'weighted', weights: { sg: 'most' } }, error: 'services[0].weights.sg: Invalid input: expected number, received string' },
  { name: 'a weight key that is not a region id', service: { policy: 'weighted', weights: { 'Singapore!': 1 } }, error: 'services[0].weights["Singapore!"]: must be a lowercase DNS label (a-z, 0-9, -), at most 32 characters' },
  {
    name: "a weight for a region outside the service's regions",
    service: { policy: 'weighted', regions: ['sg', 'jkt'], weights: { sg: 1, bkk: 1 } },
    error: `services[0].weights.bkk: "bkk" is not one of this service's regions (sg, jkt)`,
  },
  { name: 'weights on a geo service', service: { weights: { sg: 1 } }, error: "services[0].weights: only used by policy weighted (this service's policy is geo)" },
  { name: 'weights on a failover service', service: { policy: 'failover', regions: ['sg'], weights: { sg: 1 } }, error: "services[0].weights: only used by policy weighted (this service's policy is failover)" },
  { name: 'an unknown policy', service: { policy: 'random' }, error: 'services[0].policy: Invalid option: expected one of "geo"|"latency"|"failover"|"weighted"' },
];

describe('service policies: rejected, naming the field', () => {
  it.each(rejected)('$name', ({ service, error }) => {
    const err = thrownConfigError(() => parseZoneDoc(zoneWith(service)));
    expect(err.message).toBe(error);
  });

  it('a REST body for one service gets the same field path without the prefix', () => {
    const result = serviceSchema.safeParse({ name: 'api', policy: 'weighted' });
    expect(result.error?.issues.map((i) => [i.path, i.message])).toEqual([[['weights'], 'required for policy weighted: a share per region, such as { sg: 70, jkt: 30 }']]);
  });
});

describe('service policies: regions must exist (crossCheck)', () => {
  const { regions } = loadDocuments([regionsDir]);
  const config = (service: Record<string, unknown>) => ({ zone: parseZoneDoc(zoneWith(service)), regions });

  it.each([
    { name: 'a weight for a missing region', service: { policy: 'weighted', weights: { sg: 1, kul: 1 } }, errors: ['zone.services[0].weights: no region "kul"'] },
    { name: 'a priority list with a missing region', service: { policy: 'failover', regions: ['kul', 'sg'] }, errors: ['zone.services[0].regions: no region "kul"'] },
    { name: 'weights and regions all existing', service: { policy: 'weighted', regions: ['sg', 'jkt'], weights: { sg: 1, jkt: 1 } }, errors: [] },
  ])('$name', ({ service, errors }) => {
    expect(crossCheck(config(service))).toEqual(errors);
    if (errors.length) expect(thrownConfigError(() => validateConfig(config(service))).message).toContain(errors[0]);
  });
});

describe('service policies in regions/zone.yaml', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const folderWith = (service: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'arus-policy-'));
    dirs.push(dir);
    for (const name of ['zone.yaml', 'sg.yaml', 'jkt.yaml', 'bkk.yaml', 'mnl.yaml']) {
      const text = readFileSync(join(regionsDir, name), 'utf8');
      writeFileSync(join(dir, name), name === 'zone.yaml' ? text.replace('    policy: geo\n', service) : text);
    }
    return dir;
  };

  it('loads a weighted and a failover service', () => {
    const dir = folderWith('    policy: weighted\n    weights: { sg: 70, jkt: 30 }\n');
    expect(loadConfig([dir]).zone.services[0]).toMatchObject({ policy: 'weighted', weights: { sg: 70, jkt: 30 } });
    const dir2 = folderWith('    policy: failover\n    regions: [jkt, sg]\n');
    expect(loadConfig([dir2]).zone.services[0]).toMatchObject({ policy: 'failover', regions: ['jkt', 'sg'] });
  });

  it('names the file, field and line of a bad one', () => {
    const dir = folderWith('    policy: weighted\n    weights: { sg: 70, kul: 30 }\n');
    expect(thrownConfigError(() => loadConfig([dir])).message.replaceAll(dir, 'DIR')).toBe('DIR/zone.yaml: services[0].weights: no region "kul"');
    const dir2 = folderWith('    policy: failover\n');
    expect(thrownConfigError(() => loadConfig([dir2])).message.replaceAll(dir2, 'DIR')).toMatch(
      /^DIR\/zone\.yaml: services\[0\]\.regions: required for policy failover: .* \(line 17\)$/,
    );
  });
});
