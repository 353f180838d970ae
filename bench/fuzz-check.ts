// The known-good queries `npm run fuzz` interleaves with its garbage, and
// what their answers must be: the right rcode, and for A queries the right
// addresses for the ECS subnet (or the pinned region), exactly, with the
// question echoed as asked. The expected addresses come from regions/*.yaml
// (each country to the region that lists it); the run starts by checking that
// the node agrees, before any fuzz.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ecsOf, query } from '../src/dns/fixtures.js';
import { ROOT } from './dns-arus.js';

export type Check = { label: string; name: string; type: number; subnet?: string; rcode: number; addresses?: string[] };

/** Each region's A addresses, and which region each country is listed under. */
function regions(): { addresses: Map<string, string[]>; byCountry: Map<string, string> } {
  const addresses = new Map<string, string[]>();
  const byCountry = new Map<string, string>();
  const dir = join(ROOT, 'regions');
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && x !== 'zone.yaml')) {
    const doc = parseYaml(readFileSync(join(dir, f), 'utf8')) as { id: string; countries: string[]; zones: { endpoints: { address: string }[] }[] };
    addresses.set(doc.id, doc.zones.flatMap((z) => z.endpoints.map((e) => e.address)).filter((a) => !a.includes(':')).sort());
    for (const cc of doc.countries) byCountry.set(cc, doc.id);
  }
  return { addresses, byCountry };
}

/** Client networks of countries that have a region of their own (their answers are that region's). */
const SUBNETS: [string, string][] = [
  ['ID', '36.66.7.0/24'],
  ['ID', '114.124.200.0/24'],
  ['SG', '165.21.3.0/24'],
  ['SG', '116.86.77.0/24'],
  ['TH', '171.96.9.0/24'],
  ['TH', '184.22.100.0/24'],
  ['PH', '112.198.50.0/24'],
  ['PH', '49.144.1.0/24'],
];

export function checks(): Check[] {
  const { addresses, byCountry } = regions();
  const list: Check[] = [];
  for (const [cc, subnet] of SUBNETS) {
    const region = byCountry.get(cc)!;
    list.push({ label: `api A from ${subnet} (${cc} → ${region})`, name: 'aPi.gslb.example.com', type: 1, subnet, rcode: 0, addresses: addresses.get(region) });
  }
  for (const region of addresses.keys()) list.push({ label: `${region}.api A (pinned)`, name: `${region}.API.gslb.example.com`, type: 1, subnet: '36.66.7.0/24', rcode: 0, addresses: addresses.get(region) });
  list.push({ label: 'NXDOMAIN under the zone', name: 'no-such-name.gslb.example.com', type: 1, rcode: 3 });
  list.push({ label: 'outside the zone: REFUSED', name: 'example.org', type: 1, rcode: 5 });
  list.push({ label: 'apex SOA', name: 'gslb.example.com', type: 6, rcode: 0 });
  return list;
}

export const checkQuery = (c: Check, id: number) => query({ id, name: c.name, type: c.type, opt: { size: 1232, options: c.subnet ? [ecsOf(c.subnet)] : [] } });

/** Why `reply` is not the right answer to check `c` asked with `id`; undefined when it is. */
export function wrong(c: Check, id: number, reply: Buffer): string | undefined {
  if (reply.length < 12) return `a reply of ${reply.length} octets`;
  if (reply.readUInt16BE(0) !== id) return `ID ${reply.readUInt16BE(0)}, asked ${id}`;
  if (!(reply[2] & 0x80)) return 'QR clear';
  if (reply[2] & 0x02) return 'TC set';
  const rcode = reply[3] & 0x0f;
  if (rcode !== c.rcode) return `rcode ${rcode}, expected ${c.rcode}`;
  if (reply.readUInt16BE(4) !== 1) return `QDCOUNT ${reply.readUInt16BE(4)}`;
  // The question, echoed exactly as asked (letter case included).
  const asked = checkQuery(c, id);
  const qEnd = 12 + nameLength(asked, 12) + 4;
  if (!reply.subarray(12, qEnd).equals(asked.subarray(12, qEnd))) return 'question not echoed as asked';
  if (c.addresses) {
    const got = aRecords(reply, qEnd).sort();
    if (got.join(' ') !== c.addresses.join(' ')) return `addresses ${got.join(' ') || '(none)'}, expected ${c.addresses.join(' ')}`;
  }
  return undefined;
}

/** The wire length of the (uncompressed) name at `at`. */
function nameLength(m: Buffer, at: number): number {
  let p = at;
  while (m[p] !== 0) p += m[p] + 1;
  return p - at + 1;
}

/** The A records' addresses in the answer section (owners are pointers or names; both skipped). */
function aRecords(m: Buffer, at: number): string[] {
  const out: string[] = [];
  let p = at;
  for (let i = m.readUInt16BE(6); i > 0; i--) {
    while (m[p] !== 0 && (m[p] & 0xc0) !== 0xc0) p += m[p] + 1;
    p += m[p] === 0 ? 1 : 2;
    const type = m.readUInt16BE(p);
    const rdlength = m.readUInt16BE(p + 8);
    if (type === 1 && rdlength === 4) out.push(`${m[p + 10]}.${m[p + 11]}.${m[p + 12]}.${m[p + 13]}`);
    p += 10 + rdlength;
  }
  return out;
}
