// Off loopback nothing listens in plain text unless the operator says so:
// a listener without a certificate on any other address refuses to start,
// naming the flags that fix it.
import { isIP } from 'node:net';

/** localhost, 127.0.0.0/8, ::1 (and IPv4-mapped 127/8). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

/** A plain-text listener off loopback, refused: what and where, and the flags that fix it. */
export class PlaintextRefused extends Error {
  constructor(what: string, address: string, port: number) {
    super(
      `${what} would listen in plain text on ${address.includes(':') ? `[${address}]` : address}:${port}, off loopback: give --tls-cert FILE --tls-key FILE (ARUS_TLS_CERT, ARUS_TLS_KEY), or --insecure-plaintext (ARUS_INSECURE_PLAINTEXT=true) to accept that`,
    );
    this.name = 'PlaintextRefused';
  }
}

/** Throws PlaintextRefused for a listener without TLS on a non-loopback address, unless `insecurePlaintext`. */
export function requireSecureListener(what: string, listen: { address: string; port: number }, o: { tls: boolean; insecurePlaintext?: boolean }): void {
  if (o.tls || o.insecurePlaintext || isLoopbackHost(listen.address)) return;
  throw new PlaintextRefused(what, listen.address, listen.port);
}
