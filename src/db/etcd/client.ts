// The one place the rest of the code gets an etcd client from: etcd3 over TLS
// with a client certificate (etcd's security guide), every unary call under a
// deadline so that a cluster without quorum fails a call in ~1.5 s instead of
// holding it, and fault handling that moves a call to another member only when
// it surely never reached one (a write is never sent twice).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { circuitBreaker, ConsecutiveBreaker, ConstantBackoff, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, GRPCUnknownError, type IOptions } from 'etcd3';
import type { Logger } from '../../log.js';

export type EtcdClientOptions = {
  /** Every member's client URL (`--etcd`): all https:// or all http://. */
  endpoints: string[];
  /** PEM CA bundle the members' certificates chain to (`--etcd-ca`); the system's CAs when unset. */
  ca?: string;
  /** PEM client certificate and key presented to the members (`--etcd-cert`, `--etcd-key`). */
  cert?: string;
  key?: string;
  /** Allow http:// endpoints off loopback (`--insecure-plaintext`). */
  insecurePlaintext?: boolean;
  /** The deadline of every unary call (get, put, txn, lease grant…); streams (watch, keepalive) have none. */
  callTimeoutMs?: number;
};

/** A bad `--etcd*` setting, naming the flag and the fix. */
export class EtcdConfigError extends Error {
  override name = 'EtcdConfigError';
}

export const DEFAULT_CALL_TIMEOUT_MS = 1500;

type WatchBackoff = NonNullable<IOptions['faultHandling']>['watchBackoff'];

function readPem(file: string, flag: string, o: { certificate?: boolean } = {}): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new EtcdConfigError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (o.certificate) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new EtcdConfigError(`${flag} ${file}: not a PEM certificate (${(err as Error).message})`);
    }
  }
  return pem;
}

const isLoopback = (host: string) => host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);

function checkEndpoints(o: EtcdClientOptions): 'https' | 'http' {
  if (o.endpoints.length === 0) throw new EtcdConfigError('--etcd needs at least one URL (https://HOST:2379,…)');
  const schemes = new Set<string>();
  for (const raw of o.endpoints) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new EtcdConfigError(`--etcd ${raw}: not a URL: use https://HOST:2379`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new EtcdConfigError(`--etcd ${raw}: ${url.protocol} is not http: or https:`);
    if (url.protocol === 'http:' && !isLoopback(url.hostname) && !o.insecurePlaintext)
      throw new EtcdConfigError(`--etcd ${raw}: plain http off loopback: use https:// (with --etcd-ca, --etcd-cert, --etcd-key), or say --insecure-plaintext`);
    schemes.add(url.protocol);
  }
  if (schemes.size > 1) throw new EtcdConfigError(`--etcd ${o.endpoints.join(',')}: mixes http:// and https://: use one`);
  const scheme = schemes.has('https:') ? 'https' : 'http';
  if (scheme === 'http' && (o.ca || o.cert)) throw new EtcdConfigError('--etcd-ca and --etcd-cert need https:// endpoints');
  return scheme;
}

/**
 * The call never left this process: no connection to that member could be made (refused, TLS
 * refused, not yet connected), or etcd3 closed the channel under it (it resets a member's
 * channels whenever a stream to it fails). Only then is a call retried on another member; a
 * deadline or a dropped connection may hide a write that was applied, and is the caller's.
 */
const neverSent = (e: Error) => e instanceof GRPCUnavailableError && /No connection established|Channel closed before call started/.test(e.message);
/** The member itself could not be reached. */
const unreachable = (e: Error) => e instanceof GRPCUnavailableError && e.message.includes('No connection established');

/**
 * etcd is out of reach or without quorum: the answer is 503, and the call may be tried again later.
 * A call that ran out of time ends as one of three errors, depending on who noticed first: grpc-js
 * (DEADLINE_EXCEEDED), etcd's handler (UNKNOWN "context deadline exceeded") or its raft proposal
 * (UNAVAILABLE "etcdserver: request timed out"). Every member's circuit open is the fourth.
 * A write that failed so may still be applied later: its outcome is unknown, not undone.
 */
export function isEtcdUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    (err instanceof GRPCUnknownError && /context (deadline exceeded|canceled)/.test(err.message)) ||
    isBrokenCircuitError(err)
  );
}

/**
 * An etcd3 client for the members in `o.endpoints`. Reads the TLS files now: a missing one is an
 * EtcdConfigError naming its flag (`--etcd-ca FILE: no such file`). The caller closes it.
 */
export function createEtcdClient(o: EtcdClientOptions, log: Logger): Etcd3 {
  const scheme = checkEndpoints(o);
  if ((o.cert === undefined) !== (o.key === undefined)) throw new EtcdConfigError('--etcd-cert and --etcd-key go together');
  const elog = log.child({ component: 'etcd' });
  const credentials: IOptions['credentials'] =
    scheme === 'https'
      ? {
          rootCertificate: o.ca ? readPem(o.ca, '--etcd-ca', { certificate: true }) : Buffer.from(rootCertificates.join('\n')),
          ...(o.cert && o.key ? { certChain: readPem(o.cert, '--etcd-cert', { certificate: true }), privateKey: readPem(o.key, '--etcd-key') } : {}),
        }
      : undefined;
  const timeout = o.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  let client: Etcd3;
  try {
    client = connect(o, credentials, timeout, elog);
  } catch (err) {
    // grpc builds its TLS context here: a key that is no key, or not the certificate's.
    throw new EtcdConfigError(`--etcd-cert ${o.cert} / --etcd-key ${o.key}: ${(err as Error).message}`);
  }
  elog.debug({ endpoints: o.endpoints, tls: scheme === 'http' ? 'none' : o.cert ? 'mutual' : 'server', callTimeoutMs: timeout }, 'etcd client');
  return client;
}

function connect(o: EtcdClientOptions, credentials: IOptions['credentials'], timeout: number, elog: Logger): Etcd3 {
  return new Etcd3({
    hosts: o.endpoints,
    credentials,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + timeout }),
    grpcOptions: {
      // A member that stops answering (paused, cut off) would hold a watch or keepalive stream for
      // ever: pings find it, and etcd3 reconnects (to a random member: if it is the silent one again,
      // the handshake waits until it wakes). etcd refuses pings more often than every 5 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
    },
    faultHandling: {
      host: (endpoint) => {
        // Three calls in a row that cannot connect: the member is skipped, and tried again each second.
        const breaker = circuitBreaker(handleWhen(unreachable), { halfOpenAfter: 1_000, breaker: new ConsecutiveBreaker(3) });
        let down = false; // one line when it goes, one when it is back; not one per failed retrial
        breaker.onBreak((reason) => {
          if (!down) elog.warn({ endpoint, err: 'error' in reason ? reason.error.message : undefined }, 'etcd member unreachable: calls go to the others');
          down = true;
        });
        breaker.onReset(() => {
          if (down) elog.info({ endpoint }, 'etcd member reachable again');
          down = false;
        });
        return breaker;
      },
      global: retry(handleWhen(neverSent), { maxAttempts: Math.max(2, o.endpoints.length - 1), backoff: new ConstantBackoff(50) }),
      // etcd3 calls .next() on this to start each reconnection series (its own default is the
      // factory too): its typings ask for a backoff, its code for a factory.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) as unknown as WatchBackoff,
    },
  });
}
