// Who a client certificate names. Under mutual TLS a certificate is the
// credential: its SAN URI `spiffe://<trust domain>/<role>/<id…>` (or, lacking
// one, its subject CN written as `<role>/<id…>`) maps to a role and the one
// identity it may speak for, exactly as a bound token does.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { checkBinding, ROLES, type Binding, type Principal, type Role } from '../db/tokens.js';

export const DEFAULT_TRUST_DOMAIN = 'arus';

/** The path after the trust domain, per role: what each segment binds. */
const LAYOUT: Record<Role, readonly (keyof Binding | 'name')[]> = {
  probe: ['region', 'agent'],
  balancer: ['region'],
  dns: ['node'],
  admin: ['name'],
  operator: ['name'],
  viewer: ['name'],
};

/** The identity a certificate names: a principal, or why it names none Arus knows. */
export type CertificateIdentity = { principal: Principal } | { error: string };

/** `spiffe://arus/probe/jkt/jkt-1` or CN `probe/jkt/jkt-1` → principal; undefined when the certificate carries neither form. */
export function identityOf(cert: Pick<PeerCertificate, 'subjectaltname' | 'subject'>, trustDomain = DEFAULT_TRUST_DOMAIN): CertificateIdentity | undefined {
  const prefix = `spiffe://${trustDomain}/`;
  const uris = (cert.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  const uri = uris.find((u) => u.startsWith(prefix));
  if (uri) return fromPath(uri.slice(prefix.length), uri);
  if (uris.some((u) => u.startsWith('spiffe://'))) return { error: `the certificate names ${uris.join(', ')}, outside the trust domain spiffe://${trustDomain}/` };
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return typeof name === 'string' && name.includes('/') ? fromPath(name, `CN=${name}`) : undefined;
}

function fromPath(path: string, shown: string): CertificateIdentity {
  const [role, ...rest] = path.split('/');
  if (!(ROLES as readonly string[]).includes(role)) return { error: `${shown}: "${role}" is not a role (${ROLES.join(', ')})` };
  const layout = LAYOUT[role as Role];
  if (rest.length !== layout.length || rest.some((s) => s === '')) {
    return { error: `${shown}: a ${role} certificate names spiffe://<trust domain>/${role}/${layout.map((k) => `<${k}>`).join('/')}` };
  }
  const fields: Binding & { name?: string } = {};
  layout.forEach((k, i) => (fields[k] = rest[i]));
  try {
    const binding = checkBinding(role as Role, fields);
    const name = fields.name ?? binding.agent ?? binding.node ?? `${role}-${binding.region}`;
    return { principal: { role: role as Role, name, via: 'certificate', ...binding } };
  } catch (err) {
    return { error: `${shown}: ${(err as Error).message}` };
  }
}

/** The verified client certificate's identity on a TLS socket; undefined on plain sockets and for clients without a verified certificate. */
export function peerIdentity(socket: unknown, trustDomain?: string): CertificateIdentity | undefined {
  const s = socket as Partial<TLSSocket> | undefined;
  if (!s || typeof s.getPeerCertificate !== 'function' || s.authorized !== true) return undefined;
  const cert = s.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return identityOf(cert, trustDomain);
}
