import type { Env, Hono, Schema } from 'hono';
import type { Metrics } from './metrics.js';

/**
 * Mounts `GET /metrics` (Prometheus text). Who may read it is the app's auth
 * middleware's business: it lets `/metrics` through when configured open.
 */
export function metricsRoute<E extends Env, S extends Schema, B extends string>(app: Hono<E, S, B>, metrics: Pick<Metrics, 'text' | 'contentType'>): void {
  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));
}
