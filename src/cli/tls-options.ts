// The TLS options every role shares: a listener's certificate (and, on
// control, the client CA that turns on mutual TLS), a client's CA and client
// certificate for its link to control, and the one flag that accepts plain
// text off loopback. Each reads its environment variable as its default.
import type { Logger } from '../log.js';
import type { ControlHttp } from '../tls/client.js';
import type { ServerCredentials } from '../tls/server.js';
import type { Values } from './command.js';

const env = process.env;

export const tlsOpt = {
  server: {
    'tls-cert': { type: 'string', default: env.ARUS_TLS_CERT },
    'tls-key': { type: 'string', default: env.ARUS_TLS_KEY },
  },
  clientCa: {
    'tls-client-ca': { type: 'string', default: env.ARUS_TLS_CLIENT_CA },
    'tls-trust-domain': { type: 'string', default: env.ARUS_TLS_TRUST_DOMAIN ?? 'arus' },
  },
  client: {
    ca: { type: 'string', default: env.ARUS_CA },
    'client-cert': { type: 'string', default: env.ARUS_CLIENT_CERT },
    'client-key': { type: 'string', default: env.ARUS_CLIENT_KEY },
  },
  insecure: { 'insecure-plaintext': { type: 'boolean', default: env.ARUS_INSECURE_PLAINTEXT === 'true' } },
} as const;

export const tlsHelp = {
  server: `  --tls-cert FILE     PEM certificate chain this role serves HTTPS with, reloaded when it changes (ARUS_TLS_CERT)
  --tls-key FILE      its PEM private key (ARUS_TLS_KEY)`,
  clientCa: `  --tls-client-ca FILE  mutual TLS: clients must present a certificate this CA signed; it names their identity (ARUS_TLS_CLIENT_CA)
  --tls-trust-domain TD  the SPIFFE trust domain of those identities, spiffe://TD/<role>/... (default arus; ARUS_TLS_TRUST_DOMAIN)`,
  client: `  --ca FILE           PEM CA that control's certificate must chain to (default: the system's CAs; ARUS_CA)
  --client-cert FILE  PEM client certificate for control's mutual TLS (ARUS_CLIENT_CERT)
  --client-key FILE   its PEM private key (ARUS_CLIENT_KEY)`,
  insecure: `  --insecure-plaintext  allow plain HTTP off loopback (ARUS_INSECURE_PLAINTEXT=true); refused without it`,
};

const str = (v: Values[string]) => (typeof v === 'string' && v !== '' ? v : undefined);

export const insecurePlaintext = (values: Values) => values['insecure-plaintext'] === true;

/** The trust domain client certificates name their identity in (control). */
export const trustDomain = (values: Values) => str(values['tls-trust-domain']);

/** The listener's credentials from --tls-cert/--tls-key (and --tls-client-ca), or undefined for plain HTTP. */
export async function serverTls(values: Values, log: Logger): Promise<ServerCredentials | undefined> {
  const cert = str(values['tls-cert']);
  const key = str(values['tls-key']);
  const clientCa = str(values['tls-client-ca']);
  if (!cert && !key) {
    if (clientCa) throw new Error('--tls-client-ca needs --tls-cert and --tls-key: mutual TLS runs over TLS');
    return undefined;
  }
  if (!cert || !key) throw new Error(`--tls-cert and --tls-key go together: ${cert ? '--tls-key' : '--tls-cert'} is missing`);
  const { createServerCredentials } = await import('../tls/server.js');
  return createServerCredentials({ cert, key, clientCa }, log.child({ component: 'tls' }));
}

/** How this role reaches control: checks the URL (no plain text off loopback without the flag), then the TLS client. */
export async function controlLink(values: Values, url: string, log: Logger): Promise<{ url: string; http: ControlHttp }> {
  const { checkControlUrl, createControlHttp } = await import('../tls/client.js');
  const checked = checkControlUrl(url, { insecurePlaintext: insecurePlaintext(values) });
  const http = createControlHttp({ ca: str(values.ca), cert: str(values['client-cert']), key: str(values['client-key']) }, log.child({ component: 'tls' }));
  return { url: checked.href.replace(/\/$/, ''), http };
}

/** Control's replicas as one `--control` value gives them: `URL` or `URL,URL,…` (blanks and duplicates dropped). */
export function controlUrls(raw: string): string[] {
  return [...new Set(raw.split(',').map((u) => u.trim()).filter((u) => u !== ''))];
}

/**
 * How this role reaches control's replicas (`--control URL,URL,…`): each URL
 * checked as `controlLink` does, one TLS client for all (the same CA and
 * client certificate serve every replica).
 */
export async function controlLinks(values: Values, raw: string, log: Logger): Promise<{ urls: string[]; http: ControlHttp }> {
  const { checkControlUrl, createControlHttp } = await import('../tls/client.js');
  const listed = controlUrls(raw);
  if (listed.length === 0) throw new Error('--control needs at least one URL');
  const urls = listed.map((u) => checkControlUrl(u, { insecurePlaintext: insecurePlaintext(values) }).href.replace(/\/$/, ''));
  const http = createControlHttp({ ca: str(values.ca), cert: str(values['client-cert']), key: str(values['client-key']) }, log.child({ component: 'tls' }));
  return { urls, http };
}
