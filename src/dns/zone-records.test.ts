// Static records through the responder, in process: each type as written, CNAME
// chains, NODATA and NXDOMAIN around them, wildcards (RFC 4592), sizes.
import { Packet } from 'dns2';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RecordInput } from '../config/records.js';
import { parseZoneDoc } from '../config/load.js';
import { silentLogger } from '../log.js';
import { defaultConfig, query, servingState, type QuerySpec } from './fixtures.js';
import type { Remote, Transport } from './replies.js';
import { createResponder } from './responder.js';
import { RCODE, TYPE } from './wire.js';

const APEX = 'gslb.example.com';
const DKIM = 'v=DKIM1; k=rsa; p=' + 'M'.repeat(400);
const RECORDS: RecordInput[] = [
  { name: '@', type: 'CAA', values: ['0 issue "letsencrypt.org"', '0 iodef "mailto:security@example.com"'] },
  { name: '@', type: 'MX', values: ['10 mx1.example.net.', '20 mx2.example.net'] },
  { name: '@', type: 'TXT', value: 'v=spf1 -all', ttl: 3600 },
  { name: 'web', type: 'A', values: ['192.0.2.80', '192.0.2.81'] },
  { name: 'web', type: 'AAAA', value: '2001:db8::80' },
  { name: '_acme-challenge', type: 'TXT', values: ['abc', 'def'] },
  { name: 'dkim._domainkey', type: 'TXT', value: DKIM },
  { name: '_https._tcp.web', type: 'SRV', values: ['10 5 443 web.gslb.example.com.', '20 0 8443 backup.example.net.'] },
  { name: 'www', type: 'CNAME', value: 'web.gslb.example.com.' },
  { name: 'docs', type: 'CNAME', value: 'www.gslb.example.com' },
  { name: 'app', type: 'CNAME', value: 'api.gslb.example.com.' },
  { name: 'gone', type: 'CNAME', value: 'nothing.gslb.example.com.' },
  { name: 'ent', type: 'CNAME', value: 'web.gslb.example.com.' },
  { name: 'notxt', type: 'CNAME', value: '_https._tcp.web.gslb.example.com.' },
  { name: 'away', type: 'CNAME', value: 'elsewhere.example.net.' },
  { name: 'loop1', type: 'CNAME', value: 'loop2.gslb.example.com.' },
  { name: 'loop2', type: 'CNAME', value: 'loop1.gslb.example.com.' },
  { name: '*.dev', type: 'A', value: '192.0.2.90' },
  { name: '*.dev', type: 'TXT', value: 'wild' },
  { name: 'real.dev', type: 'TXT', value: 'real' },
  { name: 'deep.sub.dev', type: 'TXT', value: 'deep' },
  { name: '*.preview', type: 'CNAME', value: 'web.gslb.example.com.' },
  { name: 'big', type: 'TXT', values: Array.from({ length: 12 }, (_, i) => `${i}-${'x'.repeat(60)}`) },
];

function responderFor(records: RecordInput[]) {
  const config = defaultConfig();
  config.zone = parseZoneDoc({ ...config.zone, records });
  const state = servingState(config, 7);
  return createResponder({ getState: () => state, log: silentLogger() });
}
const responder = responderFor(RECORDS);
const RESOLVER: Remote = { address: '127.0.0.1', family: 'IPv4' };

function ask(spec: QuerySpec, transport: Transport = 'udp') {
  const raw = responder(query(spec), RESOLVER, transport);
  if (!raw) throw new Error('no reply');
  const msg = Packet.parse(raw);
  expect(msg.errors ?? []).toEqual([]);
  return { raw, msg };
}
const fqdn = (n: string) => (n === '@' ? APEX : `${n}.${APEX}`);
const answers = (msg: Packet) => msg.answers.map((a) => [a.name, a.type, a.ttl]);

describe('static records: each type as written, AA set, no steering', () => {
  it('A and AAAA: the RRset, TTL 300 by default', () => {
    const { msg } = ask({ name: fqdn('web'), type: TYPE.A });
    expect(msg.header).toMatchObject({ aa: 1, rcode: 0, ancount: 2, nscount: 0, arcount: 0 });
    expect(msg.answers.map((a) => [a.name, a.ttl, a.address])).toEqual([
      ['web.gslb.example.com', 300, '192.0.2.80'],
      ['web.gslb.example.com', 300, '192.0.2.81'],
    ]);
    expect(ask({ name: fqdn('web'), type: TYPE.AAAA }).msg.answers.map((a) => a.address)).toEqual(['2001:db8::80']);
  });

  it('TXT: one record per value; a value over 255 octets split into strings of 255 in one record', () => {
    expect(ask({ name: fqdn('_acme-challenge'), type: TYPE.TXT }).msg.answers.map((a) => a.data)).toEqual([['abc'], ['def']]);
    const dkim = ask({ name: fqdn('dkim._domainkey'), type: TYPE.TXT }).msg.answers;
    expect(dkim).toHaveLength(1);
    expect((dkim[0].data as string[]).map((s) => s.length)).toEqual([255, DKIM.length - 255]);
    expect((dkim[0].data as string[]).join('')).toBe(DKIM);
    expect(ask({ name: APEX, type: TYPE.TXT }).msg.answers.map((a) => [a.data, a.ttl])).toEqual([[['v=spf1 -all'], 3600]]);
  });

  it('CAA at the apex: flags, tag and value', () => {
    const { msg } = ask({ name: APEX, type: TYPE.CAA });
    expect(msg.answers.map((a) => [a.flags, a.tag, a.value])).toEqual([
      [0, 'issue', 'letsencrypt.org'],
      [0, 'iodef', 'mailto:security@example.com'],
    ]);
  });

  it('MX: preference and exchange (final dot optional)', () => {
    expect(ask({ name: APEX, type: TYPE.MX }).msg.answers.map((a) => [a.priority, a.exchange])).toEqual([
      [10, 'mx1.example.net'],
      [20, 'mx2.example.net'],
    ]);
  });

  it('SRV: priority, weight, port and target, the target never compressed (RFC 2782)', () => {
    const { raw, msg } = ask({ name: fqdn('_https._tcp.web'), type: TYPE.SRV });
    expect(msg.answers.map((a) => [a.priority, a.weight, a.port, a.target])).toEqual([
      [10, 5, 443, 'web.gslb.example.com'],
      [20, 0, 8443, 'backup.example.net'],
    ]);
    // The whole target, label by label, in the reply: not a pointer into the question.
    expect(raw.includes(Buffer.from('\x03web\x04gslb\x07example\x03com\x00', 'latin1'))).toBe(true);
  });

  it('the owner is the question as asked (0x20)', () => {
    expect(ask({ name: 'WeB.GSLB.example.COM', type: TYPE.A }).msg.answers[0].name).toBe('WeB.GSLB.example.COM');
  });

  it('the apex keeps its SOA and NS octet for octet', () => {
    const plain = responderFor([]);
    for (const type of [TYPE.SOA, TYPE.NS, TYPE.A, TYPE.ANY]) {
      const q = query({ name: APEX, type });
      expect(responder(q, RESOLVER, 'udp'), `type ${type}`).toEqual(plain(q, RESOLVER, 'udp'));
    }
  });
});

describe('static records: NODATA, NXDOMAIN, ANY', () => {
  it('another type at a static name: NODATA, the SOA in authority', () => {
    const { msg } = ask({ name: fqdn('web'), type: TYPE.MX });
    expect(msg.header).toMatchObject({ rcode: 0, aa: 1, ancount: 0, nscount: 1 });
    expect(msg.authorities[0]).toMatchObject({ name: APEX, type: TYPE.SOA, ttl: 60, serial: 7 });
  });

  it('an empty non-terminal (_tcp.web, sub.dev) is NODATA; a name below a static one is NXDOMAIN', () => {
    for (const name of ['_tcp.web', 'sub.dev']) expect(ask({ name: fqdn(name), type: TYPE.TXT }).msg.header).toMatchObject({ rcode: 0, ancount: 0, nscount: 1 });
    const nx = ask({ name: fqdn('x.web'), type: TYPE.A }).msg;
    expect(nx.header).toMatchObject({ rcode: RCODE.NXDOMAIN, aa: 1, ancount: 0, nscount: 1 });
    expect(nx.authorities[0]).toMatchObject({ type: TYPE.SOA });
  });

  it('ANY: the RFC 8482 HINFO at a static name; the CNAME at a CNAME', () => {
    expect(ask({ name: fqdn('web'), type: TYPE.ANY }).msg.answers.map((a) => a.type)).toEqual([TYPE.HINFO]);
    expect(ask({ name: fqdn('www'), type: TYPE.ANY }).msg.answers.map((a) => [a.type, a.domain])).toEqual([[TYPE.CNAME, 'web.gslb.example.com']]);
  });

  it('a big TXT RRset: TC over UDP without EDNS, whole over TCP', () => {
    const udp = ask({ name: fqdn('big'), type: TYPE.TXT });
    expect(udp.raw.length).toBeLessThanOrEqual(512);
    expect(udp.msg.header).toMatchObject({ tc: 1, ancount: 0 });
    const tcp = ask({ name: fqdn('big'), type: TYPE.TXT }, 'tcp');
    expect(tcp.msg.header).toMatchObject({ tc: 0, ancount: 12 });
    expect(ask({ name: fqdn('big'), type: TYPE.TXT, opt: { size: 1232 } }).msg.header).toMatchObject({ tc: 0, ancount: 12 });
  });
});

describe('static records: CNAME', () => {
  it('every QTYPE gets the CNAME, and the in-zone target RRset after it', () => {
    const { msg } = ask({ name: fqdn('www'), type: TYPE.A });
    expect(msg.header).toMatchObject({ aa: 1, rcode: 0, ancount: 3, nscount: 0 });
    expect(answers(msg)).toEqual([
      ['www.gslb.example.com', TYPE.CNAME, 300],
      ['web.gslb.example.com', TYPE.A, 300],
      ['web.gslb.example.com', TYPE.A, 300],
    ]);
    expect(msg.answers[0].domain).toBe('web.gslb.example.com');
    expect(ask({ name: fqdn('www'), type: TYPE.AAAA }).msg.answers.map((a) => a.address ?? a.domain)).toEqual(['web.gslb.example.com', '2001:db8::80']);
  });

  it('QTYPE CNAME: the CNAME alone', () => {
    expect(answers(ask({ name: fqdn('www'), type: TYPE.CNAME }).msg)).toEqual([['www.gslb.example.com', TYPE.CNAME, 300]]);
  });

  it('a chain of two: both CNAMEs, then the addresses', () => {
    expect(answers(ask({ name: fqdn('docs'), type: TYPE.A }).msg).map(([n, t]) => [n, t])).toEqual([
      ['docs.gslb.example.com', TYPE.CNAME],
      ['www.gslb.example.com', TYPE.CNAME],
      ['web.gslb.example.com', TYPE.A],
      ['web.gslb.example.com', TYPE.A],
    ]);
  });

  it('the target has no data of the type: the CNAME and the SOA, NOERROR; no such target: NXDOMAIN (RFC 6604)', () => {
    const nodata = ask({ name: fqdn('notxt'), type: TYPE.TXT }).msg;
    expect(nodata.header).toMatchObject({ rcode: 0, ancount: 1, nscount: 1 });
    expect(nodata.authorities[0]).toMatchObject({ type: TYPE.SOA });
    const nx = ask({ name: fqdn('gone'), type: TYPE.A }).msg;
    expect(nx.header).toMatchObject({ rcode: RCODE.NXDOMAIN, aa: 1, ancount: 1, nscount: 1 });
    expect(nx.answers[0]).toMatchObject({ type: TYPE.CNAME, domain: 'nothing.gslb.example.com' });
  });

  it('to a steered service, out of the zone, or in a loop: the CNAMEs alone (the resolver follows them)', () => {
    for (const [name, count] of [['app', 1], ['away', 1], ['loop1', 2]] as const) {
      const { msg } = ask({ name: fqdn(name), type: TYPE.A });
      expect(msg.header, name).toMatchObject({ rcode: 0, ancount: count, nscount: 0 });
      expect(msg.answers.every((a) => a.type === TYPE.CNAME), name).toBe(true);
    }
  });
});

describe('static records: wildcards (RFC 4592)', () => {
  it('a name that does not exist gets the wildcard, owned by the question as asked, one label or several', () => {
    for (const name of ['host.dev', 'A.B.Dev']) {
      const { msg } = ask({ name: fqdn(name), type: TYPE.A });
      expect(msg.header, name).toMatchObject({ aa: 1, rcode: 0, ancount: 1 });
      expect(msg.answers[0], name).toMatchObject({ name: fqdn(name), address: '192.0.2.90' });
    }
    expect(ask({ name: fqdn('host.dev'), type: TYPE.TXT }).msg.answers[0].data).toEqual(['wild']);
  });

  it('another type at a synthesized name: NODATA with the SOA', () => {
    const { msg } = ask({ name: fqdn('somewhere.long.dev'), type: TYPE.MX });
    expect(msg.header).toMatchObject({ rcode: 0, ancount: 0, nscount: 1 });
    expect(msg.authorities[0]).toMatchObject({ name: APEX, type: TYPE.SOA, ttl: 60 });
  });

  it('not for names that exist (a record, an empty non-terminal), nor below them (the closest encloser)', () => {
    expect(ask({ name: fqdn('real.dev'), type: TYPE.TXT }).msg.answers[0].data).toEqual(['real']);
    expect(ask({ name: fqdn('real.dev'), type: TYPE.A }).msg.header).toMatchObject({ rcode: 0, ancount: 0, nscount: 1 });
    expect(ask({ name: fqdn('sub.dev'), type: TYPE.A }).msg.header).toMatchObject({ rcode: 0, ancount: 0 });
    for (const name of ['x.real.dev', 'x.sub.dev', 'x.deep.sub.dev']) expect(ask({ name: fqdn(name), type: TYPE.A }).msg.header.rcode, name).toBe(RCODE.NXDOMAIN);
    expect(ask({ name: fqdn('x.nodev'), type: TYPE.A }).msg.header.rcode).toBe(RCODE.NXDOMAIN);
  });

  it('the wildcard owner asked literally is answered like any name', () => {
    expect(ask({ name: fqdn('*.dev'), type: TYPE.A }).msg.answers[0]).toMatchObject({ name: fqdn('*.dev'), address: '192.0.2.90' });
  });

  it('a wildcard CNAME: synthesized for the question, then its target', () => {
    const { msg } = ask({ name: fqdn('pr-42.preview'), type: TYPE.A });
    expect(answers(msg).map(([n, t]) => [n, t])).toEqual([
      ['pr-42.preview.gslb.example.com', TYPE.CNAME],
      ['web.gslb.example.com', TYPE.A],
      ['web.gslb.example.com', TYPE.A],
    ]);
  });

  it('names outside the zone stay REFUSED, steered names stay steered', () => {
    expect(ask({ name: 'x.dev.example.org', type: TYPE.A }).msg.header.rcode).toBe(RCODE.REFUSED);
    const wild = responderFor([{ name: '*', type: 'A', value: '192.0.2.99' }]);
    const msg = (spec: QuerySpec) => Packet.parse(wild(query(spec), RESOLVER, 'udp')!);
    expect(msg({ name: fqdn('anything'), type: TYPE.A }).answers[0].address).toBe('192.0.2.99');
    expect(msg({ name: fqdn('api'), type: TYPE.A }).answers.map((a) => a.address)).not.toContain('192.0.2.99');
    expect(msg({ name: fqdn('x.sg.api'), type: TYPE.A }).header.rcode).toBe(RCODE.NXDOMAIN);
    expect(msg({ name: 'gslb.example.org', type: TYPE.A }).header.rcode).toBe(RCODE.REFUSED);
  });
});

describe('static records: a new snapshot with the same records', () => {
  it('carries its own serial in every SOA, and the previous snapshot keeps its own', () => {
    const config = defaultConfig();
    config.zone = parseZoneDoc({ ...config.zone, records: RECORDS });
    let state = servingState(config, 7);
    const r = createResponder({ getState: () => state, log: silentLogger() });
    const serials = () =>
      (
        [
          ['web', TYPE.MX],
          ['x.dev', TYPE.MX],
          ['gone', TYPE.A],
          ['notxt', TYPE.TXT],
          ['_tcp.web', TYPE.A],
        ] as const
      ).map(([name, type]) => Packet.parse(r(query({ name: fqdn(name), type }), RESOLVER, 'udp')!).authorities[0].serial);
    expect(serials()).toEqual([7, 7, 7, 7, 7]);
    const first = state;
    state = servingState(config, 8);
    expect(serials()).toEqual([8, 8, 8, 8, 8]);
    state = first;
    expect(serials()).toEqual([7, 7, 7, 7, 7]);
  });
});

describe('static records: any name (property)', () => {
  it('every query under the apex gets a well-formed reply with the right rcode for what exists', () => {
    const label = fc.stringMatching(/^[a-z0-9_*-]{1,12}$/);
    const known = fc.constantFrom('dev', 'real.dev', 'sub.dev', 'web', '_tcp.web', 'www', 'preview', 'api', 'sg.api', '@');
    fc.assert(
      fc.property(fc.array(label, { maxLength: 4 }), known, fc.constantFrom(1, 5, 16, 28, 15, 33, 257, 255, 99), (labels, under, type) => {
        const name = [...labels, under === '@' ? APEX : fqdn(under)].join('.');
        const raw = responder(query({ name, type }), RESOLVER, 'udp')!;
        const msg = Packet.parse(raw);
        expect(msg.errors ?? []).toEqual([]);
        expect([RCODE.NOERROR, RCODE.NXDOMAIN]).toContain(msg.header.rcode);
        expect(msg.header.aa).toBe(1);
        // Under *.dev (and not below a name that exists there), every name exists.
        if (under === 'dev' && labels.length > 0 && !/^(real|sub|\*)$/.test(labels.at(-1)!)) expect(msg.header.rcode).toBe(RCODE.NOERROR);
      }),
      { numRuns: 2000, seed: 4592 },
    );
  });
});
