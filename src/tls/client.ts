// How a role talks to control: HTTPS that verifies control's certificate
// against `--ca` (or the system's CAs), presents a client certificate when
// control requires one, and refuses plain text off loopback unless the
// operator said `--insecure-plaintext`. A failure says which URL and why,
// in words that name the fix; nothing ever falls back to plain text.
import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import type { Logger } from '../log.js';
import { isLoopbackHost } from './plaintext.js';
import { TlsFileError } from './server.js';
import { watchFiles } from './watch.js';

export type ClientTlsFiles = {
  /** PEM CA bundle control's certificate must chain to (`--ca`, ARUS_CA); the system's CAs when unset. */
  ca?: string;
  /** PEM client certificate and key presented to control (`--client-cert`, `--client-key`): mutual TLS. */
  cert?: string;
  key?: string;
};

/** `fetch`, narrowed to what roles call it with. */
export type ControlFetch = (url: string, init?: RequestInit) => Promise<Response>;

export interface ControlHttp {
  /** `fetch` through the TLS settings; errors are ControlLinkErrors that name the URL and the reason. */
  fetch: ControlFetch;
  close(): Promise<void>;
}

/** A link to control that failed: the URL, and the reason in words that name the fix. */
export class ControlLinkError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${url}: ${reason}`, options);
    this.name = 'ControlLinkError';
  }
}

/** Refuses a control URL that would carry credentials in plain text off loopback. */
export function checkControlUrl(raw: string, opts: { insecurePlaintext?: boolean } = {}): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ControlLinkError(raw, 'not a URL: use https://HOST:PORT');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ControlLinkError(raw, `${url.protocol} is not http: or https:`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !opts.insecurePlaintext)
    throw new ControlLinkError(raw, 'plain http off loopback would send the token in the clear: use https:// (with --ca FILE for a private CA), or say --insecure-plaintext');
  return url;
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsFileError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

function agentFor(files: ClientTlsFiles): Agent {
  const connect = {
    minVersion: 'TLSv1.2' as const,
    ...(files.ca ? { ca: readPem(files.ca, '--ca') } : {}),
    ...(files.cert ? { cert: readPem(files.cert, '--client-cert') } : {}),
    ...(files.key ? { key: readPem(files.key, '--client-key') } : {}),
  };
  return new Agent({ connect, keepAliveTimeout: 30_000 });
}

/** The fetch a role uses for control: reads the files now (a TlsFileError if one is missing), and again when they change. */
export function createControlHttp(files: ClientTlsFiles, log: Logger, opts: { pollMs?: number } = {}): ControlHttp {
  if ((files.cert === undefined) !== (files.key === undefined)) throw new TlsFileError('--client-cert and --client-key go together');
  let agent = agentFor(files);
  const watched = [files.ca, files.cert, files.key].filter((f): f is string => f !== undefined);
  const watch = watched.length
    ? watchFiles(watched, opts.pollMs ?? 1000, () => {
        let next: Agent;
        try {
          next = agentFor(files);
        } catch {
          return false;
        }
        const old = agent;
        agent = next;
        // Requests under way (a snapshot stream) finish on the old connections.
        void old.close().catch(() => {});
        log.info({ files: watched }, 'TLS client files reloaded');
        return true;
      })
    : undefined;

  return {
    async fetch(url, init) {
      try {
        return (await undiciFetch(url, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: agent })) as unknown as Response;
      } catch (err) {
        if ((err as Error).name === 'AbortError' || (init?.signal?.aborted ?? false)) throw err;
        throw new ControlLinkError(url, explain(url, err, { clientCert: files.cert !== undefined }), { cause: err });
      }
    },
    async close() {
      watch?.stop();
      await agent.close();
    },
  };
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE']);

/** The innermost error with a code, its message, and (for a certificate error) the names the certificate has. */
function rootCause(err: unknown): { code: string; message: string; names?: string } {
  let found: { code: string; message: string; names?: string } = { code: '', message: err instanceof Error ? err.message : String(err) };
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    const names = (e as { cert?: { subjectaltname?: string } }).cert?.subjectaltname;
    if (typeof code === 'string') found = { code, message: (e as Error).message, names };
  }
  return found;
}

/** Why a request to control failed, said so the operator knows which flag or file fixes it. */
export function explain(url: string, err: unknown, o: { clientCert?: boolean } = {}): string {
  const { code, message, names } = rootCause(err);
  const https = url.startsWith('https:');
  if (UNTRUSTED.has(code)) return `TLS: control's certificate is not signed by a CA this role trusts (${code}): give the CA that signed it with --ca FILE`;
  if (code === 'CERT_HAS_EXPIRED') return `TLS: control's certificate has expired (${code}): renew it on control`;
  if (code === 'CERT_NOT_YET_VALID') return `TLS: control's certificate is not valid yet (${code}): check both clocks`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `TLS: control's certificate does not name ${new URL(url).hostname} (${code}; it names ${names || 'no host'}): use a URL with a name the certificate has, or add it to the certificate`;
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|BAD_CERTIFICATE|UNKNOWN_CA/i.test(code) || /alert (certificate required|bad certificate|unknown ca|handshake failure)/i.test(message))
    return `TLS: control refused this role's client certificate or its absence (${code || message}): give a certificate its client CA signed with --client-cert FILE --client-key FILE`;
  if (https && (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(message)))
    return `TLS: control does not speak TLS on this port (${code || message}): is it serving plain http?`;
  const closed = code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || /other side closed|socket hang up/i.test(message);
  if (!https && closed) return `control closed the connection before answering (${code || message}): does it serve https? use an https:// URL`;
  // TLS 1.3: a server that wants a client certificate, and did not get one it trusts, closes right after the handshake.
  if (https && closed)
    return o.clientCert
      ? `TLS: control closed the connection after the handshake (${code || message}): it may not trust this role's client certificate (--client-cert): was it signed by control's client CA?`
      : `TLS: control closed the connection after the handshake (${code || message}): it may require a client certificate: give one its client CA signed with --client-cert FILE --client-key FILE`;
  return `${code ? `${code}: ` : ''}${message}`;
}
