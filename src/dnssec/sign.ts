// RRSIGs (RFC 4034 §3, RFC 4035 §5.3): the signature over an RRset in
// canonical form, with node's crypto. ECDSA P-256 signs the SHA-256 of the
// data and is carried as r ‖ s (IEEE P1363, RFC 6605 §4); Ed25519 signs the
// data itself (RFC 8080 §4). Times are seconds since the epoch, compared in
// serial-number arithmetic by validators (they wrap in 2106).
import { sign, verify } from 'node:crypto';
import { ALGORITHM, publicKeyOf, type SigningKey } from './keys.js';
import { labelCountWire, nameWire } from './names.js';
import { DNSSEC_TYPE } from './rdata.js';

const CLASS_IN = 1;

/**
 * One resource record of an RRset; `rdata` already canonical (rdata.ts).
 * `owner`, when given, is `name` in canonical wire form, so that it is not
 * encoded again (the hot path has it already).
 */
export type Rr = { readonly name: string; readonly type: number; readonly ttl: number; readonly rdata: Buffer; readonly owner?: Buffer };

/** An RR's owner in canonical wire form. */
export const ownerWire = (r: Rr): Buffer => r.owner ?? nameWire(r.name);

// Signer names, encoded once: a zone signs with one.
const signerWires = new Map<string, Buffer>();
function signerWire(signer: string): Buffer {
  let w = signerWires.get(signer);
  if (!w) {
    if (signerWires.size > 64) signerWires.clear();
    signerWires.set(signer, (w = nameWire(signer)));
  }
  return w;
}
export type SignatureWindow = { readonly inception: number; readonly expiration: number };

/** RRSIG RDATA up to (not including) the signature: the part that is signed too. */
function rrsigHead(rrset: readonly Rr[], key: SigningKey, signer: string, w: SignatureWindow, ttl: number): Buffer {
  const { type } = rrset[0];
  const signerName = signerWire(signer);
  const head = Buffer.alloc(18 + signerName.length);
  head.writeUInt16BE(type, 0);
  head[2] = key.algorithm;
  head[3] = labelCountWire(ownerWire(rrset[0]));
  head.writeUInt32BE(ttl >>> 0, 4);
  head.writeUInt32BE(w.expiration >>> 0, 8);
  head.writeUInt32BE(w.inception >>> 0, 12);
  head.writeUInt16BE(key.tag, 16);
  signerName.copy(head, 18);
  return head;
}

/** The signed data: the RRSIG's head, then each RR (owner, type, class, original TTL, RDATA) sorted by RDATA, duplicates once. */
function signedData(head: Buffer, rrset: readonly Rr[], originalTtl: number): Buffer {
  const owner = ownerWire(rrset[0]);
  const rdatas = rrset.length === 1 ? [rrset[0].rdata] : [...new Map(rrset.map((r) => [r.rdata.toString('hex'), r.rdata])).values()].sort((a, b) => Buffer.compare(a, b));
  const parts = [head];
  for (const rdata of rdatas) {
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(rrset[0].type, 0);
    fixed.writeUInt16BE(CLASS_IN, 2);
    fixed.writeUInt32BE(originalTtl >>> 0, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    parts.push(owner, fixed, rdata);
  }
  return Buffer.concat(parts);
}

function checkRrset(rrset: readonly Rr[]): void {
  if (rrset.length === 0) throw new Error('an RRset to sign has at least one record');
  if (rrset.length === 1) return;
  const owner = ownerWire(rrset[0]);
  for (const r of rrset)
    if (r.type !== rrset[0].type || !ownerWire(r).equals(owner) || r.ttl !== rrset[0].ttl) throw new Error(`an RRset is one owner, one type and one TTL: ${r.name} ${r.type} ${r.ttl}`);
}

/**
 * The RRSIG RDATA over `rrset` by `key` for the zone `signer`, valid in window `w`. The original TTL is
 * the RRset's unless given: an RRset served with a lower TTL than it is signed with (a health-derived one)
 * still validates, since validators take the lower of the two.
 */
function rrsigRdata(rrset: readonly Rr[], key: SigningKey, signer: string, w: SignatureWindow, originalTtl = rrset[0]?.ttl): Buffer {
  checkRrset(rrset);
  const head = rrsigHead(rrset, key, signer, w, originalTtl);
  const data = signedData(head, rrset, originalTtl);
  const signature = key.algorithm === ALGORITHM.ED25519 ? sign(null, data, key.privateKey) : sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return Buffer.concat([head, signature]);
}

/** The RRSIG record that covers `rrset`, with the RRset's TTL (served) and `originalTtl` (signed). */
export function rrsigOf(rrset: readonly Rr[], key: SigningKey, signer: string, w: SignatureWindow, originalTtl?: number): Rr {
  const rdata = rrsigRdata(rrset, key, signer, w, originalTtl);
  return { name: rrset[0].name, type: DNSSEC_TYPE.RRSIG, ttl: rrset[0].ttl, rdata };
}

/** Whether `rrsig` (RDATA) is a valid signature over `rrset` by the DNSKEY `dnskey` (RDATA), at time `now` (seconds). */
export function verifyRrsig(rrset: readonly Rr[], rrsig: Buffer, dnskey: Buffer, now = Math.floor(Date.now() / 1000)): boolean {
  checkRrset(rrset);
  const signerEnd = 18 + wireNameLength(rrsig, 18);
  const head = rrsig.subarray(0, signerEnd);
  const signature = rrsig.subarray(signerEnd);
  if (head.readUInt16BE(0) !== rrset[0].type) return false;
  const expiration = head.readUInt32BE(8);
  const inception = head.readUInt32BE(12);
  if (((now - inception) | 0) < 0 || ((expiration - now) | 0) < 0) return false;
  const { algorithm, key } = publicKeyOf(dnskey);
  if (head[2] !== algorithm) return false;
  const data = signedData(head, rrset, head.readUInt32BE(4));
  return algorithm === ALGORITHM.ED25519 ? verify(null, data, key, signature) : verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
}

function wireNameLength(b: Buffer, at: number): number {
  let i = at;
  while (b[i] !== 0) {
    if (i >= b.length) throw new Error('an RRSIG whose signer name has no end');
    i += b[i] + 1;
  }
  return i + 1 - at;
}
