// The webhook provider: the pool's figures POSTed, with a bearer token, to
// the operator's endpoint (a cloud API's adapter, Terraform Cloud, a
// script), which adds instances to the balancer's configuration and removes
// the drained ones it is told of. A failed call is retried with exponential
// back-off; when every retry failed the caller is told (and makes it an
// event) and tries again at its next decision.
import { ExponentialBackoff, handleAll, retry } from 'cockatiel';
import { request } from 'undici';
import type { ScaleProviderDoc } from '../../config/scaling-schema.js';
import { isLoopbackHost } from '../../tls/plaintext.js';
import type { ScaleProvider } from './provider.js';

type WebhookDoc = Extract<ScaleProviderDoc, { kind: 'webhook' }>;

/** A webhook that cannot be used as configured: the message names the field or variable that fixes it. */
export class WebhookConfigError extends Error {}

export function createWebhookProvider(doc: WebhookDoc, env: NodeJS.ProcessEnv = process.env, backoff = { initialDelay: 250, maxDelay: 10_000 }): ScaleProvider {
  const url = new URL(doc.url);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !doc.insecurePlaintext)
    throw new WebhookConfigError(`autoscale webhook ${doc.url}: plain http off loopback would send the token in the clear: use https://, or set provider.insecurePlaintext: true`);
  const token = env[doc.tokenEnv];
  if (!token) throw new WebhookConfigError(`autoscale webhook ${doc.url}: no bearer token: set ${doc.tokenEnv} (provider.tokenEnv names the variable)`);
  const policy = retry(handleAll, { maxAttempts: doc.retries, backoff: new ExponentialBackoff(backoff) });

  return {
    kind: 'webhook',
    async announce(figures, drained) {
      const body = JSON.stringify({ ...figures, drained: drained.map((i) => ({ id: i.id, url: i.url })), at: new Date().toISOString() });
      let attempts = 0;
      try {
        await policy.execute(async () => {
          attempts++;
          const res = await request(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'user-agent': 'arus-autoscaler' },
            body,
            headersTimeout: doc.timeoutMs,
            bodyTimeout: doc.timeoutMs,
          });
          await res.body.dump();
          if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`answered ${res.statusCode}`);
        });
      } catch (err) {
        throw new Error(`POST ${doc.url} failed ${attempts} time${attempts === 1 ? '' : 's'} (last: ${(err as Error).message})`, { cause: err });
      }
    },
    close: () => Promise.resolve(),
  };
}
