// TLS for the HTTP listeners (control's API and status page, the balancer,
// a DNS node's /metrics): a certificate and key from PEM files, TLS 1.2 or
// newer, optionally a client CA that makes client certificates mandatory
// (mutual TLS), and the files loaded again when they change, without a restart.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type Server, type TlsOptions } from 'node:tls';
import type { Logger } from '../log.js';
import { watchFiles } from './watch.js';

export type ServerTlsFiles = {
  /** PEM certificate chain (`--tls-cert`, ARUS_TLS_CERT). */
  cert: string;
  /** PEM private key (`--tls-key`, ARUS_TLS_KEY). */
  key: string;
  /** PEM CA bundle client certificates must chain to (`--tls-client-ca`): mutual TLS. */
  clientCa?: string;
};

/** A certificate, key or CA that cannot be used: the flag, the file and the reason. */
export class TlsFileError extends Error {}

export interface ServerCredentials {
  /** Options for `https.createServer` (TLS ≥ 1.2; client certificates required when a client CA is set). */
  readonly options: TlsOptions;
  /** True when client certificates are required. */
  readonly mutual: boolean;
  /** Keeps `server`'s certificate current: a change to the files reaches it without a restart. */
  attach(server: Server): void;
  /** The certificate now served: its SHA-256 fingerprint and expiry. */
  current(): { fingerprint: string; notAfter: string; reloads: number };
  stop(): void;
}

const read = (file: string, flag: string) => {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
};

/** Reads and checks the files: each parses, the key matches the certificate. */
function load(files: ServerTlsFiles): { options: SecureContextOptions; cert: X509Certificate } {
  const cert = read(files.cert, '--tls-cert');
  const key = read(files.key, '--tls-key');
  const ca = files.clientCa ? read(files.clientCa, '--tls-client-ca') : undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(`--tls-cert ${files.cert}: not a PEM certificate (${(err as Error).message})`);
  }
  const options: SecureContextOptions = { cert, key, ca, minVersion: 'TLSv1.2' };
  try {
    createSecureContext(options);
  } catch (err) {
    const msg = (err as Error).message;
    if (/key values mismatch/i.test(msg)) throw new TlsFileError(`--tls-key ${files.key} is not the key of the certificate in --tls-cert ${files.cert}`);
    throw new TlsFileError(`--tls-cert ${files.cert} / --tls-key ${files.key}${ca ? ` / --tls-client-ca ${files.clientCa}` : ''}: ${msg}`);
  }
  return { options, cert: x509 };
}

/** Loads the files now (throws a TlsFileError naming the flag, file and reason), then watches them. */
export function createServerCredentials(files: ServerTlsFiles, log: Logger, opts: { pollMs?: number } = {}): ServerCredentials {
  let { options: base, cert } = load(files);
  const mutual = files.clientCa !== undefined;
  const servers = new Set<Server>();
  let reloads = 0;
  let lastError: string | undefined;
  const describe = () => ({ fingerprint: cert.fingerprint256, notAfter: new Date(cert.validTo).toISOString() });
  if (Date.parse(cert.validTo) < Date.now()) log.warn({ cert: files.cert, notAfter: cert.validTo }, 'TLS certificate has expired: clients will refuse it');

  const watch = watchFiles([files.cert, files.key, ...(files.clientCa ? [files.clientCa] : [])], opts.pollMs ?? 1000, () => {
    let next;
    try {
      next = load(files);
    } catch (err) {
      // Half-written (a certificate before its key): keep serving the old pair, try again at the next poll.
      const msg = (err as Error).message;
      if (msg !== lastError) log.warn({ err: msg }, 'TLS files changed but do not load yet: still serving the previous certificate');
      lastError = msg;
      return false;
    }
    lastError = undefined;
    ({ options: base, cert } = next);
    reloads++;
    for (const s of servers) s.setSecureContext(base);
    log.info({ cert: files.cert, ...describe(), reloads }, 'TLS certificate reloaded');
    return true;
  });

  return {
    options: { ...base, requestCert: mutual, rejectUnauthorized: mutual },
    mutual,
    attach(server) {
      servers.add(server);
      server.once('close', () => servers.delete(server));
    },
    current: () => ({ ...describe(), reloads }),
    stop: () => watch.stop(),
  };
}
