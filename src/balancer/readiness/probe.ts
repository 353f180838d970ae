// What an instance says about itself over HTTP: whether it is ready to
// serve (`/health`, and `/v1/models` listing every model it is configured
// for) and its `/metrics` text, over one keep-alive agent.
import { Agent } from 'undici';
import type { Instance } from '../types.js';

export interface Probe {
  /** Why the instance is not ready, or undefined when it is; throws only when it does not answer (refused, reset, timed out). */
  ready(inst: Instance): Promise<string | undefined>;
  /** The `/metrics` text, or undefined when it does not answer 200. */
  metrics(inst: Instance): Promise<string | undefined>;
  close(): Promise<void>;
}

export function createProbe(opts: { intervalMs: number; timeoutMs: number }): Probe {
  const { timeoutMs } = opts;
  const agent = new Agent({ keepAliveTimeout: Math.max(opts.intervalMs * 2, 4000), headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });

  async function get(inst: Instance, path: string): Promise<{ status: number; text: string }> {
    const res = await agent.request({ origin: inst.url, path, method: 'GET', signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.statusCode, text: await res.body.text() };
  }

  return {
    async ready(inst) {
      const health = await get(inst, '/health');
      if (health.status !== 200) return `/health answered ${health.status}`;
      const models = await get(inst, '/v1/models');
      if (models.status !== 200) return `/v1/models answered ${models.status}`;
      let listed: Set<unknown>;
      try {
        listed = new Set((JSON.parse(models.text) as { data?: { id?: unknown }[] }).data?.map((m) => m.id));
      } catch {
        return '/v1/models answered no JSON'; // an answer all the same: counted as one, not as silence
      }
      const missing = inst.models.filter((m) => !listed.has(m));
      return missing.length ? `models not loaded: ${missing.join(', ')}` : undefined;
    },
    async metrics(inst) {
      const res = await get(inst, '/metrics');
      return res.status === 200 ? res.text : undefined;
    },
    close: () => agent.close(),
  };
}
