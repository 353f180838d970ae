// A small certificate authority for a lab or a first deployment: a CA, server
// certificates for the names and addresses a listener answers on, and client
// certificates that name an identity (spiffe://<trust domain>/<role>/<id…>).
// ECDSA P-256 with SHA-256, made with @peculiar/x509 over node's WebCrypto.
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it, before the import
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { DEFAULT_TRUST_DOMAIN } from './identity.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;

export type Pem = { cert: string; key: string };
export type Authority = Pem & { keys: CryptoKeyPair; certificate: x509.X509Certificate };

type Validity = { days?: number; notBefore?: Date; notAfter?: Date };

function validity(v: Validity): { notBefore: Date; notAfter: Date } {
  // A minute back: a peer whose clock is a little behind still accepts a certificate made just now.
  const notBefore = v.notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore, notAfter: v.notAfter ?? new Date(notBefore.getTime() + (v.days ?? 365) * DAY_MS) };
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

const serial = () => Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '7');

/** A self-signed CA that may sign end-entity certificates only (path length 0). */
export async function createAuthority(o: Validity & { name?: string } = {}): Promise<Authority> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${o.name ?? 'Arus lab CA'}`,
    ...validity(o),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keys, certificate, cert: certificate.toString('pem') + '\n', key: await keyPem(keys) };
}

export type LeafOptions = Validity & {
  /** The subject's CN. */
  name: string;
  /** DNS names and IP addresses (a server's). */
  hosts?: readonly string[];
  /** URI names (a client's identity). */
  uris?: readonly string[];
  /** `both`: server and client authentication in one certificate, as an etcd 3.4 member needs for its peer links. */
  usage: 'server' | 'client' | 'both';
};

/** A certificate signed by `ca`, for a server (its host names and addresses) or a client (its identity URI). */
export async function issue(ca: Authority, o: LeafOptions): Promise<Pem> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const names: x509.JsonGeneralName[] = [
    ...(o.hosts ?? []).map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h })),
    ...(o.uris ?? []).map((u) => ({ type: 'url' as const, value: u })),
  ];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.name}`,
    issuer: ca.certificate.subject,
    ...validity(o),
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([...(o.usage !== 'client' ? [x509.ExtendedKeyUsage.serverAuth] : []), ...(o.usage !== 'server' ? [x509.ExtendedKeyUsage.clientAuth] : [])]),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: certificate.toString('pem') + '\n', key: await keyPem(keys) };
}

/** A client certificate for an identity path such as `probe/jkt/jkt-1`: URI SAN spiffe://<trust domain>/<path>, and the path as its CN. */
export function issueClient(ca: Authority, path: string, o: Validity & { trustDomain?: string } = {}): Promise<Pem> {
  return issue(ca, { ...o, name: path, uris: [`spiffe://${o.trustDomain ?? DEFAULT_TRUST_DOMAIN}/${path}`], usage: 'client' });
}
