// The admin API's metrics: requests by method, route pattern and status, and
// their duration, counted by a Hono middleware.
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { Counter, Histogram, type Registry } from 'prom-client';

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const API_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The route label of a request that no route matched (404). */
export const UNMATCHED_ROUTE = 'unmatched';

/** Registers the `api_*` metrics on `registry`; returns the middleware that fills them. */
export function registerApiMetrics(prefix: string, registry: Registry): MiddlewareHandler {
  const registers = [registry];
  const requests = new Counter({ name: `${prefix}api_requests_total`, help: 'Admin API requests, by method, route pattern and status.', labelNames: ['method', 'route', 'status'], registers });
  const requestSeconds = new Histogram({
    name: `${prefix}api_request_seconds`,
    help: 'Admin API request duration until the response is ready (for streams: until they start), by method and route pattern.',
    labelNames: ['method', 'route'],
    buckets: API_BUCKETS,
    registers,
  });

  return async (c, next) => {
    const started = performance.now();
    let status = 500;
    try {
      await next();
      status = c.res.status;
    } finally {
      const method = HTTP_METHODS.has(c.req.method) ? c.req.method : 'other';
      const route = routeOf(matchedRoutes(c));
      requests.inc({ method, route, status: String(status) });
      requestSeconds.observe({ method, route }, (performance.now() - started) / 1000);
    }
  };
}

/**
 * The pattern of the route that answers (or would have answered, had a
 * middleware such as auth not answered first), never the concrete path: one
 * series per route, not per region id. Middleware registered with `use` does
 * not count as a route.
 */
function routeOf(routes: readonly { path: string; method: string; handler: { length: number } }[]): string {
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i];
    if (r.method !== 'ALL' || r.handler.length < 2) return r.path;
  }
  return UNMATCHED_ROUTE;
}
