// RDATA in the canonical form DNSSEC signs (RFC 4034 §6.2): uncompressed,
// with the domain names inside NS and SOA lowercased (A and AAAA are their
// address octets as they are); and the type
// bitmap NSEC carries (§4.1.2: a window, its length, then one bit a type).
import { nameWire } from './names.js';

export const DNSSEC_TYPE = { DS: 43, RRSIG: 46, NSEC: 47, DNSKEY: 48, CDS: 59, CDNSKEY: 60, NXNAME: 128 } as const;

export const nsRdata = (host: string): Buffer => nameWire(host);

export function soaRdata(s: { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }): Buffer {
  const tail = Buffer.alloc(20);
  [s.serial, s.refresh, s.retry, s.expire, s.minimum].forEach((v, i) => tail.writeUInt32BE(v >>> 0, i * 4));
  return Buffer.concat([nameWire(s.mname), nameWire(s.rname), tail]);
}

/** The NSEC type bitmap of `types`: per 256-type window in use, its number, its length and its bits. */
export function typeBitmap(types: readonly number[]): Buffer {
  const windows = new Map<number, number[]>();
  for (const t of new Set(types)) {
    if (!Number.isInteger(t) || t < 0 || t > 0xffff) throw new Error(`not an RR type: ${t}`);
    const w = t >> 8;
    const bits = windows.get(w) ?? [];
    bits.push(t & 0xff);
    windows.set(w, bits);
  }
  const parts: Buffer[] = [];
  for (const w of [...windows.keys()].sort((a, b) => a - b)) {
    const bits = windows.get(w)!;
    const length = (Math.max(...bits) >> 3) + 1;
    const block = Buffer.alloc(2 + length);
    block[0] = w;
    block[1] = length;
    for (const b of bits) block[2 + (b >> 3)] |= 0x80 >> (b & 7);
    parts.push(block);
  }
  return Buffer.concat(parts);
}

/** NSEC RDATA: the next owner name (canonical) and the types at this one. */
export function nsecRdata(next: string, types: readonly number[]): Buffer {
  return Buffer.concat([nameWire(next), typeBitmap(types)]);
}
