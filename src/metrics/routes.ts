import { Hono, type Env, type Schema } from 'hono';
import type { Metrics } from './metrics.js';

/**
 * Mounts `GET /metrics` (Prometheus text). Who may read it is the app's auth
 * middleware's business: it lets `/metrics` through when configured open.
 */
export function metricsRoute<E extends Env, S extends Schema, B extends string>(app: Hono<E, S, B>, metrics: Pick<Metrics, 'text' | 'contentType'>): void {
  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));
}

/** An app with only `GET /metrics`, for a process without the admin API (`arus dns`): serve it on its own listener. */
export function metricsApp(metrics: Pick<Metrics, 'text' | 'contentType'>): Hono {
  const app = new Hono();
  metricsRoute(app, metrics);
  return app;
}
