import { createRoute } from '@hono/zod-openapi';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { anyJson, errors, json } from './shared.js';

/** The replicated control plane: its replicas (leader, followers, the revision each has applied) and etcd's members with their health. */
export function clusterRoutes(app: Api, deps: ApiDeps) {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/cluster',
      tags: ['cluster'],
      summary: "The control plane's replicas (leader, followers, applied revision) and etcd's members and their health",
      middleware: [deps.auth.requireRole('viewer')] as const,
      responses: { 200: json(anyJson, '{ mode, self, replicas: [...], members: [...] }'), ...errors },
    }),
    async (c) => {
      const cluster = deps.cluster;
      if (!cluster) return c.json({ mode: 'embedded', replicas: [], members: [] }, 200);
      try {
        const [replicas, members] = await Promise.all([cluster.replicas(), cluster.members()]);
        return c.json({ mode: 'replicated', self: cluster.self(), replicas, members }, 200);
      } catch (err) {
        // etcd without quorum: this replica's own view is all there is.
        return problem(c, 503, `etcd cannot be asked (${(err as Error).message}); this replica: ${JSON.stringify(cluster.self())}`);
      }
    },
  );
}
