// Test and benchmark fixtures: hand-built queries and configurations.
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { regionSchema, type Config } from '../config/schema.js';
import { createLocator, type Locator } from '../geo/locator.js';
import { buildSnapshot, type Snapshot } from '../snapshot/snapshot.js';

export const REGIONS_DIR = fileURLToPath(new URL('../../regions/', import.meta.url));

/**
 * The default configuration in regions/, each zone given an IPv6 endpoint
 * beside its loopback IPv4 one (2001:db8:113::<region><zone>, no check), as a
 * production zone lists A and AAAA addresses: the demo has only one loopback v6.
 */
export function defaultConfig(): Config {
  const config = loadConfig([REGIONS_DIR]);
  for (const r of config.regions)
    for (const z of r.zones) {
      const v4 = z.endpoints.find((e) => e.address !== undefined && !e.address.includes(':'));
      if (v4) z.endpoints.push({ ...v4, check: undefined, address: `2001:db8:113::${v4.address!.split('.')[3]}` });
    }
  return config;
}

/**
 * The default configuration plus a region `hcm` (Ho Chi Minh City) with 40
 * endpoints per family and a service `bulk` served only there with up to 32
 * answers: replies too big for 512 octets. `api` keeps the four default regions.
 */
export function bigConfig(): Config {
  const base = defaultConfig();
  const endpoints = (from: number) =>
    Array.from({ length: 20 }, (_, i) => [{ address: `198.18.0.${from + i}` }, { address: `2001:db8:ff::${(from + i).toString(16)}` }]).flat();
  const hcm = regionSchema.parse({
    id: 'hcm',
    name: 'Ho Chi Minh City',
    location: { lat: 10.8231, lon: 106.6297 },
    countries: ['VN'],
    zones: [
      { id: 'hcm-a', endpoints: endpoints(1) },
      { id: 'hcm-b', endpoints: endpoints(101) },
    ],
  });
  const api = base.zone.services.find((s) => s.name === 'api')!;
  return {
    zone: {
      ...base.zone,
      services: [
        { ...api, regions: base.regions.map((r) => r.id) },
        { name: 'bulk', ttl: 30, policy: 'geo', failMode: 'open', regions: ['hcm'], maxAnswers: 32 },
      ],
    },
    regions: [...base.regions, hcm],
  };
}

export function servingState(config: Config, version = 1): { snapshot: Snapshot; locator: Locator } {
  return {
    snapshot: buildSnapshot(config, version),
    locator: createLocator({ database: config.zone.geoip.database, nets: config.zone.nets }),
  };
}

export type OptSpec = {
  size?: number;
  version?: number;
  dnssecOk?: boolean;
  /** The OPT TTL's low 16 bits (DO and the Z flags), instead of `dnssecOk`. */
  flags?: number;
  /** Owner name in wire format; the root unless set. */
  owner?: number[];
  options?: { code: number; data: number[] }[];
  /** Overrides RDLENGTH. */
  rdlength?: number;
};

export type QuerySpec = {
  id?: number;
  /** Flags word; RD only unless set. */
  flags?: number;
  qdcount?: number;
  ancount?: number;
  nscount?: number;
  arcount?: number;
  name?: string;
  /** QNAME in wire format, instead of `name`. */
  rawName?: number[];
  type?: number;
  qclass?: number;
  opt?: OptSpec | OptSpec[];
  /** Octets appended after everything else. */
  tail?: number[];
};

export function nameWire(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split('.').filter(Boolean)) out.push(label.length, ...Buffer.from(label, 'latin1'));
  out.push(0);
  return out;
}

function optWire(o: OptSpec): number[] {
  const rdata = (o.options ?? []).flatMap((x) => [x.code >> 8, x.code & 0xff, x.data.length >> 8, x.data.length & 0xff, ...x.data]);
  const size = o.size ?? 1232;
  const rdlength = o.rdlength ?? rdata.length;
  const flags = o.flags ?? (o.dnssecOk ? 0x8000 : 0);
  return [...(o.owner ?? [0]), 0, 41, size >> 8, size & 0xff, 0, o.version ?? 0, flags >> 8, flags & 0xff, rdlength >> 8, rdlength & 0xff, ...rdata];
}

/** ECS option data: family, source prefix, scope, and the address octets given. */
export function ecs(family: number, source: number, address: number[], scope = 0): { code: number; data: number[] } {
  return { code: 8, data: [0, family, source, scope, ...address] };
}

/** ECS option for `a.b.c.d/len` or an IPv6 network, address truncated as RFC 7871 asks. */
export function ecsOf(cidr: string): { code: number; data: number[] } {
  const [addr, len] = cidr.split('/');
  const source = Number(len);
  const octets = Math.ceil(source / 8);
  if (!addr.includes(':')) return ecs(1, source, addr.split('.').map(Number).slice(0, octets));
  const halves = addr.split('::');
  const groups = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1] ?? '');
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  return ecs(2, source, all.flatMap((g) => [g >> 8, g & 0xff]).slice(0, octets));
}

/** The edns-tcp-keepalive option (RFC 7828): empty, as a client sends it, or with a TIMEOUT (a client must not). */
export function keepalive(timeout?: number): { code: number; data: number[] } {
  return { code: 11, data: timeout === undefined ? [] : [timeout >> 8, timeout & 0xff] };
}

/** A query message built octet by octet, so that tests can break any part of it. */
export function query(spec: QuerySpec = {}): Buffer {
  const opts = spec.opt === undefined ? [] : Array.isArray(spec.opt) ? spec.opt : [spec.opt];
  const id = spec.id ?? 0x1234;
  const flags = spec.flags ?? 0x0100;
  const count = (n: number) => [n >> 8, n & 0xff];
  const type = spec.type ?? 1;
  const qclass = spec.qclass ?? 1;
  return Buffer.from([
    id >> 8,
    id & 0xff,
    flags >> 8,
    flags & 0xff,
    ...count(spec.qdcount ?? 1),
    ...count(spec.ancount ?? 0),
    ...count(spec.nscount ?? 0),
    ...count(spec.arcount ?? opts.length),
    ...(spec.rawName ?? nameWire(spec.name ?? 'api.gslb.example.com')),
    type >> 8,
    type & 0xff,
    qclass >> 8,
    qclass & 0xff,
    ...opts.flatMap(optWire),
    ...(spec.tail ?? []),
  ]);
}

/** A reply as the protocol tests check it: every header bit, the question, and the OPT record octet for octet. */
export type DecodedReply = {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  /** The reserved header bit (0x0040). */
  z: boolean;
  ad: boolean;
  cd: boolean;
  /** RCODE, with the OPT's extended bits when there is one. */
  rcode: number;
  counts: { qd: number; an: number; ns: number; ar: number };
  question?: { name: string; type: number; qclass: number };
  /** Types of the answer, authority and additional records (OPT included). */
  types: { an: number[]; ns: number[]; ar: number[] };
  opt?: { size: number; version: number; /** The TTL's low 16 bits: DO and the Z flags. */ flags: number; options: { code: number; data: number[] }[] };
};

/** Decodes a reply strictly (a reply that does not parse throws): tests only. */
export function decodeReply(buf: Buffer): DecodedReply {
  const u16 = (p: number) => {
    if (p + 2 > buf.length) throw new Error(`reply cut short at ${p}`);
    return buf.readUInt16BE(p);
  };
  const skipName = (p: number): number => {
    for (;;) {
      const l = buf[p];
      if (l === undefined) throw new Error('name runs past the end');
      if (l === 0) return p + 1;
      if ((l & 0xc0) === 0xc0) return p + 2;
      p += 1 + l;
    }
  };
  const flags = u16(2);
  const counts = { qd: u16(4), an: u16(6), ns: u16(8), ar: u16(10) };
  const out: DecodedReply = {
    id: u16(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    z: (flags & 0x0040) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: flags & 0xf,
    counts,
    types: { an: [], ns: [], ar: [] },
  };
  let p = 12;
  for (let i = 0; i < counts.qd; i++) {
    const labels: string[] = [];
    for (let l = buf[p]; l !== 0; l = buf[p]) {
      if (l === undefined || l > 63) throw new Error('bad question name');
      labels.push(buf.toString('latin1', p + 1, p + 1 + l));
      p += 1 + l;
    }
    p += 1;
    out.question = { name: labels.join('.'), type: u16(p), qclass: u16(p + 2) };
    p += 4;
  }
  for (const section of ['an', 'ns', 'ar'] as const) {
    for (let i = 0; i < counts[section]; i++) {
      const owner = p;
      p = skipName(p);
      const type = u16(p);
      const rdlength = u16(p + 8);
      const rdata = p + 10;
      if (rdata + rdlength > buf.length) throw new Error('record runs past the end');
      out.types[section].push(type);
      if (type === 41) {
        if (out.opt || section !== 'ar' || buf[owner] !== 0) throw new Error('misplaced OPT');
        const options: { code: number; data: number[] }[] = [];
        for (let o = rdata; o < rdata + rdlength; ) {
          const len = u16(o + 2);
          options.push({ code: u16(o), data: [...buf.subarray(o + 4, o + 4 + len)] });
          o += 4 + len;
        }
        out.opt = { size: u16(p + 2), version: buf[p + 5], flags: u16(p + 6), options };
        out.rcode |= buf[p + 4] << 4;
      }
      p = rdata + rdlength;
    }
  }
  if (p !== buf.length) throw new Error(`${buf.length - p} octets after the last record`);
  return out;
}
