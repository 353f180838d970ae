import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { thrownConfigError } from './config-error.case.js';
import { formatPath, loadConfig, loadDocuments, parseRegionDoc, validateConfig } from './load.js';

const regionsDir = fileURLToPath(new URL('../../regions', import.meta.url));
const original = (name: string) => readFileSync(join(regionsDir, name), 'utf8');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A temp copy of the default regions/ folder, with files replaced (string) or removed (null). */
function fixture(changes: Record<string, string | null> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'arus-load-'));
  dirs.push(dir);
  for (const name of ['zone.yaml', 'sg.yaml', 'jkt.yaml', 'bkk.yaml', 'mnl.yaml']) writeFileSync(join(dir, name), original(name));
  for (const [name, text] of Object.entries(changes)) {
    if (text === null) rmSync(join(dir, name));
    else writeFileSync(join(dir, name), text);
  }
  return dir;
}

const configError = thrownConfigError;

const sg = original('sg.yaml');
const zone = original('zone.yaml');
/** The 1-based line of the first occurrence of `needle` in `text`. */
const lineOf = (text: string, needle: string) => text.slice(0, text.indexOf(needle)).split('\n').length;

describe('the default regions/ folder', () => {
  it('loads and validates: zone gslb.example.com and regions sg, jkt, bkk, mnl', () => {
    const config = loadConfig([regionsDir]);
    expect(config.zone.apex).toBe('gslb.example.com');
    expect(config.zone.defaultRegion).toBe('sg');
    expect(config.zone.services.map((s) => s.name)).toEqual(['api']);
    const byId = Object.fromEntries(config.regions.map((r) => [r.id, r]));
    expect(Object.keys(byId).sort()).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    expect(byId.sg.location).toEqual({ lat: 1.3521, lon: 103.8198 });
    expect(byId.jkt.location).toEqual({ lat: -6.2088, lon: 106.8456 });
    expect(byId.bkk.location).toEqual({ lat: 13.7563, lon: 100.5018 });
    expect(byId.mnl.location).toEqual({ lat: 14.5995, lon: 120.9842 });
    for (const r of config.regions) {
      expect(r.zones.length).toBeGreaterThanOrEqual(2);
      // The demo: every zone's endpoint is a loopback address where the region's balancer listens.
      const listen = r.balancer!.listen;
      for (const z of r.zones) for (const e of z.endpoints) expect(listen).toContain(`${e.address}:8000`);
    }
  });

  it('reads a folder in sorted file order and names each region file', () => {
    const docs = loadDocuments([regionsDir]);
    expect(docs.regions.map((r) => r.id)).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    expect(docs.sources.zone).toBe(join(regionsDir, 'zone.yaml'));
    expect(docs.sources.regions.sg).toBe(join(regionsDir, 'sg.yaml'));
  });
});

describe('loadDocuments', () => {
  it('accepts single files as well as folders', () => {
    const docs = loadDocuments([join(regionsDir, 'sg.yaml')]);
    expect(docs.zone).toBeUndefined();
    expect(docs.regions.map((r) => r.id)).toEqual(['sg']);
  });

  it('applies every document of a multi-document file', () => {
    const dir = fixture();
    const all = join(dir, 'all.yaml');
    writeFileSync(all, [zone, sg, original('jkt.yaml')].join('\n---\n'));
    const docs = loadDocuments([all]);
    expect(docs.zone?.apex).toBe('gslb.example.com');
    expect(docs.regions.map((r) => r.id)).toEqual(['sg', 'jkt']);
  });

  it('reads .yml, ignores other files and skips empty documents', () => {
    const dir = fixture({ 'mnl.yaml': null, 'mnl.yml': original('mnl.yaml'), 'README.md': '# not config', 'empty.yaml': '# only a comment\n' });
    expect(loadDocuments([dir]).regions.map((r) => r.id)).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
  });

  it('fills defaults and normalizes', () => {
    const dir = fixture({ 'zone.yaml': zone.replace('apex: gslb.example.com', 'apex: GSLB.Example.COM.') });
    const { zone: z, regions } = loadDocuments([dir]);
    expect(z?.apex).toBe('gslb.example.com');
    expect(z?.soa.mname).toBeUndefined();
    expect(regions[0].down).toBe(false);
    expect(regions[0].zones[0].endpoints[0].check).toMatchObject({ status: 200, timeoutMs: 1000 });
  });
});

// Each case: files changed in a copy of regions/, and what the error must say.
// `contains` entries are checked against the message with the temp folder written as DIR.
const errorCases: { name: string; files: Record<string, string | null>; contains: string[]; count?: number }[] = [
  {
    name: 'YAML syntax error: file and line',
    files: { 'sg.yaml': 'id: sg\nname: Singapore\nlocation: { lat: 1.3, lon: 103.8\ncountries: [SG]\n' },
    contains: ['DIR/sg.yaml: invalid YAML: ', '(line 4)'],
  },
  {
    name: 'duplicate key in a mapping',
    files: { 'sg.yaml': sg.replace('name: Singapore', 'name: Singapore\nname: Again') },
    contains: ['DIR/sg.yaml: invalid YAML: Map keys must be unique', `(line ${lineOf(sg, 'name: Singapore') + 1})`],
  },
  {
    name: 'bad address: file, field path, reason and line',
    files: { 'sg.yaml': sg.replace('127.0.1.12', '203.0.113.300') },
    contains: [`DIR/sg.yaml: zones[1].endpoints[0].address: must be an IPv4 or IPv6 address (line ${lineOf(sg, '127.0.1.12')})`],
  },
  {
    name: 'missing field',
    files: { 'jkt.yaml': original('jkt.yaml').replace('name: Jakarta\n', '') },
    contains: ['DIR/jkt.yaml: name: is required'],
  },
  {
    name: 'unknown field',
    files: { 'bkk.yaml': original('bkk.yaml').replace('  - id: bkk-b\n', '  - id: bkk-b\n    colour: blue\n') },
    contains: [`DIR/bkk.yaml: zones[1].colour: unknown field (line ${lineOf(original('bkk.yaml'), '- id: bkk-b') + 1})`],
  },
  {
    name: 'wrong type',
    files: { 'sg.yaml': sg.replace('lat: 1.3521', 'lat: north') },
    contains: [`DIR/sg.yaml: location.lat: Invalid input: expected number, received string (line ${lineOf(sg, 'lat: 1.3521')})`],
  },
  {
    name: 'region with one zone',
    files: { 'mnl.yaml': original('mnl.yaml').split('  - id: mnl-b')[0] },
    contains: [`DIR/mnl.yaml: zones: a region needs two or more availability zones (line ${lineOf(original('mnl.yaml'), 'zones:')})`],
  },
  {
    name: 'unknown check type',
    files: { 'sg.yaml': sg.replace('{ type: http, url: "http://127.0.1.11:8000/v1/models", bodyContains: "llama-3-8b" }', '{ type: grpc }') },
    contains: ['DIR/sg.yaml: zones[0].endpoints[0].check.type: Invalid discriminator value'],
  },
  {
    name: 'bad CIDR key in nets',
    files: { 'zone.yaml': zone.replace('"10.0.0.0/8"', '"10.0.0.0/33"') },
    contains: ['DIR/zone.yaml: nets["10.0.0.0/33"]: must be a network in CIDR notation'],
  },
  {
    name: 'a nets key with host bits set',
    files: { 'zone.yaml': zone.replace('"10.0.0.0/8"', '"10.9.9.9/8"') },
    contains: ['DIR/zone.yaml: nets["10.9.9.9/8"]: has host bits set'],
  },
  {
    name: 'the same network twice in nets, spelt differently',
    files: { 'zone.yaml': zone.replace('"10.0.0.0/8": { region: sg }', '"10.0.0.0/8": { region: sg }\n  "::ffff:10.0.0.0/104": { region: jkt }') },
    contains: ['DIR/zone.yaml: nets["::ffff:10.0.0.0/104"]: the same network as "10.0.0.0/8"'],
  },
  {
    name: 'bad net target: the closest shape is reported',
    files: { 'zone.yaml': zone.replace('"10.0.0.0/8": { region: sg }', '"10.0.0.0/8": { region: Singapore! }') },
    contains: ['DIR/zone.yaml: nets["10.0.0.0/8"].region: must be a lowercase DNS label'],
  },
  {
    name: 'in-zone name server without glue',
    files: { 'zone.yaml': zone.replace('    addresses: [198.51.100.53, 2001:db8:53::2]\n', '') },
    contains: ['DIR/zone.yaml: nameservers[1].addresses: ns2.gslb.example.com is inside gslb.example.com and needs glue addresses'],
  },
  {
    name: 'a document that is not a mapping',
    files: { 'sg.yaml': '- id: sg\n' },
    contains: ["DIR/sg.yaml: expected a mapping: a region or the zone's settings (with apex) (line 1)"],
  },
  {
    name: 'duplicate region id across files names both files',
    files: { 'sg2.yaml': sg },
    contains: ['DIR/sg2.yaml: id: region "sg" is also defined in DIR/sg.yaml'],
  },
  {
    name: "the zone's settings twice",
    files: { 'zone2.yaml': zone },
    contains: ["DIR/zone2.yaml: the zone's settings are also defined in DIR/zone.yaml"],
  },
  {
    name: 'several errors in several files are all listed',
    files: {
      'sg.yaml': sg.replace('127.0.1.12', 'nope').replace('name: Singapore', 'name: ""'),
      'jkt.yaml': 'id: jkt\nbroken: [\n',
    },
    contains: [
      'DIR/sg.yaml: name: Too small',
      'DIR/sg.yaml: zones[1].endpoints[0].address: must be an IPv4 or IPv6 address',
      'DIR/jkt.yaml: invalid YAML',
    ],
    count: 3,
  },
];

describe('ConfigError from loadDocuments', () => {
  it.each(errorCases)('$name', ({ files, contains, count }) => {
    const dir = fixture(files);
    const err = configError(() => loadDocuments([dir]));
    const message = err.message.replaceAll(dir, 'DIR');
    for (const part of contains) expect(message).toContain(part);
    if (count !== undefined) {
      expect(err.issues).toHaveLength(count);
      expect(message.split('\n')).toHaveLength(count);
    }
  });

  it('names a path that does not exist', () => {
    const missing = join(tmpdir(), 'arus-no-such-folder-xyz');
    expect(configError(() => loadDocuments([missing])).message).toBe(`${missing}: no such file or folder`);
  });

  it('carries structured issues for the API', () => {
    const dir = fixture({ 'sg.yaml': sg.replace('127.0.1.12', 'bad') });
    expect(configError(() => loadDocuments([dir])).issues).toEqual([
      { source: join(dir, 'sg.yaml'), path: 'zones[1].endpoints[0].address', message: 'must be an IPv4 or IPv6 address', line: lineOf(sg, '127.0.1.12') },
    ]);
  });
});

// Documents that are each valid but do not make a whole configuration.
const crossCases: { name: string; files: Record<string, string | null>; contains: string }[] = [
  { name: 'missing zone settings', files: { 'zone.yaml': null }, contains: 'no zone settings' },
  {
    name: 'dangling defaultRegion',
    files: { 'zone.yaml': zone.replace('defaultRegion: sg', 'defaultRegion: kul') },
    contains: 'DIR/zone.yaml: defaultRegion: no region "kul"',
  },
  {
    name: 'a net pointing at a missing region',
    files: { 'zone.yaml': zone.replace('"172.16.0.0/12": { region: sg }', '"172.16.0.0/12": { region: hcm }') },
    contains: 'DIR/zone.yaml: nets["172.16.0.0/12"].region: no region "hcm"',
  },
  {
    name: 'a service limited to a missing region',
    files: { 'zone.yaml': zone.replace('    maxAnswers: 8', '    maxAnswers: 8\n    regions: [sg, kul]') },
    contains: 'DIR/zone.yaml: services[0].regions: no region "kul"',
  },
  { name: 'the default region deleted', files: { 'sg.yaml': null }, contains: 'DIR/zone.yaml: defaultRegion: no region "sg"' },
];

describe('validateConfig', () => {
  it.each(crossCases)('$name', ({ files, contains }) => {
    const dir = fixture(files);
    const docs = loadDocuments([dir]);
    const err = configError(() => validateConfig(docs));
    expect(err.message.replaceAll(dir, 'DIR')).toContain(contains);
  });

  it('without sources, paths are from the whole config', () => {
    const { zone: z, regions } = loadDocuments([regionsDir]);
    const err = configError(() => validateConfig({ zone: { ...z!, defaultRegion: 'kul' }, regions: [...regions, regions[0]] }));
    expect(err.message).toContain('zone.defaultRegion: no region "kul"');
    expect(err.message).toContain('regions[4].id: duplicate region "bkk"');
  });

  it('returns the whole config when valid', () => {
    const config = validateConfig(loadDocuments([regionsDir]));
    expect(config.regions).toHaveLength(4);
  });
});

describe('parseRegionDoc (REST bodies)', () => {
  it('names the field without a file', () => {
    const err = configError(() => parseRegionDoc({ id: 'SG', name: 'x', location: { lat: 100, lon: 0 }, zones: [] }));
    expect(err.issues.map((i) => i.path)).toEqual(['id', 'location.lat', 'zones']);
    expect(err.message).toMatch(/^id: must be a lowercase DNS label/);
  });
});

describe('formatPath', () => {
  it.each([
    [['zones', 1, 'endpoints', 0, 'address'], 'zones[1].endpoints[0].address'],
    [['nets', '10.0.0.0/8', 'region'], 'nets["10.0.0.0/8"].region'],
    [[], ''],
    [[0, 'id'], '[0].id'],
  ])('%j → %s', (path, expected) => {
    expect(formatPath(path)).toBe(expected);
  });
});
