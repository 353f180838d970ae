// DNSSEC keys with node's crypto: ECDSA P-256 with SHA-256 (algorithm 13,
// RFC 6605) by default, Ed25519 (15, RFC 8080) as the option. A key's DNSKEY
// RDATA (RFC 4034 §2.1), its key tag (Appendix B) and its DS record
// (§5.1, SHA-256: digest type 2, RFC 4509), the one the parent publishes.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { nameWire } from './names.js';

export const ALGORITHM = { ECDSAP256SHA256: 13, ED25519: 15 } as const;
export type Algorithm = (typeof ALGORITHM)[keyof typeof ALGORITHM];
/** DNSKEY flags: a zone key (bit 7), and a key-signing key with the SEP bit (bit 15) too. */
export const FLAGS = { ZSK: 256, KSK: 257 } as const;
const PROTOCOL = 3;
const DIGEST_SHA256 = 2;

/** A key that signs: the private half, and what the zone publishes of it. */
export type SigningKey = { readonly algorithm: Algorithm; readonly flags: number; readonly privateKey: KeyObject; readonly rdata: Buffer; readonly tag: number };

/** A new key pair; the private key as PKCS #8 PEM (what the store keeps). */
export function generateSigningKey(algorithm: Algorithm, flags: number): { key: SigningKey; pem: string } {
  const { privateKey } = algorithm === ALGORITHM.ED25519 ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: signingKey(privateKey, algorithm, flags), pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** The key a stored PEM holds; refused when it is not of `algorithm`'s kind. */
export function signingKeyFromPem(pem: string, algorithm: Algorithm, flags: number): SigningKey {
  return signingKey(createPrivateKey(pem), algorithm, flags);
}

function signingKey(privateKey: KeyObject, algorithm: Algorithm, flags: number): SigningKey {
  const rdata = dnskeyRdata(flags, algorithm, publicKeyField(privateKey, algorithm));
  return { algorithm, flags, privateKey, rdata, tag: keyTag(rdata) };
}

/** The DNSKEY Public Key field: P-256's point as x ‖ y (64 octets, RFC 6605 §4), Ed25519's 32 octets (RFC 8080 §3). */
export function publicKeyField(key: KeyObject, algorithm: Algorithm): Buffer {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (algorithm === ALGORITHM.ED25519) {
    if (jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('not an Ed25519 key (algorithm 15)');
    return Buffer.from(jwk.x, 'base64url');
  }
  if (jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new Error('not a P-256 key (algorithm 13)');
  return Buffer.concat([Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}

/** The public key a DNSKEY RDATA carries, for verifying. */
export function publicKeyOf(rdata: Buffer): { algorithm: Algorithm; key: KeyObject } {
  const algorithm = rdata[3];
  const field = rdata.subarray(4);
  if (algorithm === ALGORITHM.ED25519 && field.length === 32) return { algorithm, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: field.toString('base64url') }, format: 'jwk' }) };
  if (algorithm === ALGORITHM.ECDSAP256SHA256 && field.length === 64)
    return { algorithm, key: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: field.subarray(0, 32).toString('base64url'), y: field.subarray(32).toString('base64url') }, format: 'jwk' }) };
  throw new Error(`a DNSKEY of algorithm ${algorithm} with a ${field.length}-octet key: not one Arus signs with (13 or 15)`);
}

export function dnskeyRdata(flags: number, algorithm: Algorithm, publicKey: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(flags, 0);
  head[2] = PROTOCOL;
  head[3] = algorithm;
  return Buffer.concat([head, publicKey]);
}

/** RFC 4034 Appendix B: the ones'-complement-style sum of the RDATA's 16-bit words. */
export function keyTag(rdata: Buffer): number {
  let ac = 0;
  for (let i = 0; i < rdata.length; i++) ac += i & 1 ? rdata[i] : rdata[i] << 8;
  ac += (ac >> 16) & 0xffff;
  return ac & 0xffff;
}

/** The DS RDATA for `owner`'s key: key tag, algorithm, SHA-256, digest of owner ‖ DNSKEY RDATA. */
export function dsRdata(owner: string, key: Pick<SigningKey, 'rdata' | 'tag' | 'algorithm'>): Buffer {
  const digest = createHash('sha256').update(nameWire(owner)).update(key.rdata).digest();
  const head = Buffer.alloc(4);
  head.writeUInt16BE(key.tag, 0);
  head[2] = key.algorithm;
  head[3] = DIGEST_SHA256;
  return Buffer.concat([head, digest]);
}

/** The DS record in presentation form, to give the parent: `example.com. 3600 IN DS 12345 13 2 ABCD…`. */
export function dsText(owner: string, key: Pick<SigningKey, 'rdata' | 'tag' | 'algorithm'>, ttl = 3600): string {
  const fqdn = owner.endsWith('.') ? owner : `${owner}.`;
  return `${fqdn} ${ttl} IN DS ${key.tag} ${key.algorithm} ${DIGEST_SHA256} ${dsRdata(owner, key).subarray(4).toString('hex').toUpperCase()}`;
}

/** The DNSKEY record in presentation form. */
export function dnskeyText(owner: string, key: Pick<SigningKey, 'rdata'>, ttl = 3600): string {
  const fqdn = owner.endsWith('.') ? owner : `${owner}.`;
  return `${fqdn} ${ttl} IN DNSKEY ${key.rdata.readUInt16BE(0)} ${key.rdata[2]} ${key.rdata[3]} ${key.rdata.subarray(4).toString('base64')}`;
}
