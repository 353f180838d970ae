import { OpenAPIHono } from '@hono/zod-openapi';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Env } from '../api/env.js';
import { createMetrics } from './metrics.js';
import { metricsApp, metricsRoute } from './routes.js';

describe('GET /metrics', () => {
  it('serves the registry as Prometheus text, counting itself', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const app = new Hono();
    app.use('*', metrics.apiMiddleware);
    metricsRoute(app, metrics);
    expect((await app.request('/metrics')).status).toBe(200);
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toContain('# TYPE arus_dns_queries_total counter');
    expect(text).toContain('arus_api_requests_total{method="GET",route="/metrics",status="200"} 1');
  });

  it('mounts on the admin API\'s app type', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const app = new OpenAPIHono<Env>();
    metricsRoute(app, metrics);
    expect(await (await app.request('/metrics')).text()).toContain('arus_failovers_total{kind="failover"} 0');
  });

  it('stands alone for a process without the admin API', async () => {
    const app = metricsApp(createMetrics({ defaultMetrics: false }));
    const res = await app.request('/metrics');
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await res.text()).toContain('# TYPE arus_dns_decision_seconds histogram');
    expect((await app.request('/v1/regions')).status).toBe(404);
  });
});
