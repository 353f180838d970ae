import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { encodeSnapshot } from '../../snapshot/document.js';
import type { Snapshot } from '../../snapshot/snapshot.js';
import type { Api, ApiDeps } from '../deps.js';
import { mismatch, refuseIdentity } from '../identity.js';
import { anyJson, errors } from './shared.js';

/** How often an idle stream carries a `ping`; a node that hears nothing for three of these reconnects. */
export const KEEPALIVE_MS = 1000;

const document = { description: 'a snapshot document: { format, version, sha256, state: { zone, regions, health, latency, capacity } } (src/snapshot/README.md)', content: { 'application/json': { schema: anyJson } } };

/**
 * What DNS nodes answer from: control's current snapshot, and the stream of
 * every new one (`arus dns --control`). Readable by the dns role (and viewers).
 */
export function snapshotRoutes(app: Api, deps: ApiDeps, opts: { keepaliveMs?: number } = {}) {
  const read = deps.auth.requireRole('viewer', 'dns');
  const keepaliveMs = opts.keepaliveMs ?? KEEPALIVE_MS;
  const { log } = deps;
  // One encoding per published snapshot, however many nodes listen, and one with the ZSK for the nodes that sign.
  const encoded = new WeakMap<Snapshot, string>();
  const withZsk = new WeakMap<Snapshot, string>();
  const encode = (s: Snapshot, signs = false) => {
    const cache = signs && s.dnssec?.zsk ? withZsk : encoded;
    let text = cache.get(s);
    if (text === undefined) cache.set(s, (text = encodeSnapshot(s, { withZsk: cache === withZsk })));
    return text;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/snapshots/current',
      tags: ['snapshots'],
      summary: 'The snapshot DNS nodes answer from now, as its document (version, sha256, configuration, health, latency, capacity)',
      middleware: [read] as const,
      responses: { 200: document, ...errors },
    }),
    // Already JSON text (the cached encoding), so not c.json().
    (c) => {
      const principal = c.get('principal');
      const s = deps.control.current().snapshot;
      return c.body(encode(s, signs(principal, principal.node ?? principal.name, s)), 200, { 'content-type': 'application/json' }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/snapshots/stream',
      tags: ['snapshots'],
      summary: 'Server-sent events for DNS nodes: `hello` ({ keepaliveMs, version }), then `snapshot` (id: version) at once and at every change, `ping` when idle',
      description:
        'A node that lost its stream passes `gapMs` when it reconnects; for a dns or admin token control records a `dns.reconnected` event. Only the latest snapshot is sent to a node that reads slower than control publishes.',
      middleware: [read] as const,
      request: {
        query: z.object({
          // eslint-disable-next-line no-control-regex -- refusing control characters is what this pattern is for
          node: z.string().min(1).max(100).regex(/^[^\u0000-\u001f\u007f]+$/, 'must be printable').optional().openapi({ description: "the node's name; a dns credential may name only the node it is bound to (the default)", example: 'dns-sg-1' }),
          version: z.coerce.number().int().min(0).optional().openapi({ description: 'the version the node answers from' }),
          gapMs: z.coerce.number().int().min(0).optional().openapi({ description: 'how long the node has been without control' }),
        }),
      },
      responses: { 200: { description: 'text/event-stream of snapshot documents', content: { 'text/event-stream': { schema: anyJson } } }, ...errors },
    }),
    (c) => {
      const q = c.req.valid('query');
      const principal = c.get('principal');
      const node = q.node ?? principal.node ?? principal.name;
      const refused = principal.role === 'dns' ? mismatch(principal, { node }) : undefined;
      if (refused) return refuseIdentity(c, deps, { subject: `dns:${node}`, claim: { node }, refused });
      const current = deps.control.current().snapshot;
      // A viewer may watch; only a node's own token (or an admin) writes to the history.
      if (q.gapMs !== undefined && (principal.role === 'dns' || principal.role === 'admin')) recordReconnect(deps, node, q.gapMs, q.version, current);
      log.info({ node, version: q.version ?? null, current: current.version, gapMs: q.gapMs ?? null }, 'dns node subscribed');
      return streamSSE(c, (stream) => pushSnapshots(stream, { deps, node, keepaliveMs, encode: (s) => encode(s, signs(principal, node, s)) }));
    },
  );
}

/** A signed zone's ZSK goes only to the dns credential of a node the zone names as a signer, never to a viewer or an admin. */
function signs(principal: { role: string }, node: string, s: Snapshot): boolean {
  return principal.role === 'dns' && (s.zone.dnssec?.signers ?? []).some((n) => n === '*' || n === node);
}

// The history's record of a node that lost its stream and came back.
function recordReconnect(deps: ApiDeps, node: string, gapMs: number, version: number | undefined, current: Snapshot) {
  const meanwhile = version === undefined ? 'with no snapshot to answer from meanwhile' : `answering from its last snapshot (version ${version}) meanwhile`;
  // Deferred: a node must get its snapshots while the database cannot take the row.
  deps.store.deferEvent({
    kind: 'dns.reconnected',
    subject: `dns:${node}`,
    oldState: 'disconnected',
    newState: 'connected',
    reason: `dns node ${node} reached control again after ${(gapMs / 1000).toFixed(1)} s without it, ${meanwhile}; now version ${current.version}`,
    data: { node, gapMs, version: version ?? null, current: current.version },
  });
}

// One node's stream: `hello`, then the latest snapshot whenever it changes (a slow reader skips
// the ones in between), and a `ping` after `keepaliveMs` without one; until the node goes away.
async function pushSnapshots(stream: SSEStreamingApi, o: { deps: ApiDeps; node: string; keepaliveMs: number; encode: (s: Snapshot) => string }) {
  const { deps, node, keepaliveMs, encode } = o;
  let latest = deps.control.current().snapshot;
  let open = true;
  let wake: (() => void) | undefined;
  const unsubscribe = deps.control.subscribe((s) => {
    latest = s.snapshot;
    wake?.();
  });
  stream.onAbort(() => {
    open = false;
    wake?.();
  });
  try {
    await stream.writeSSE({ event: 'hello', data: JSON.stringify({ keepaliveMs, version: latest.version }) });
    let sent: Snapshot | undefined;
    while (open) {
      if (latest !== sent) {
        sent = latest;
        await stream.writeSSE({ event: 'snapshot', id: String(sent.version), data: encode(sent) });
        continue;
      }
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), keepaliveMs);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      wake = undefined;
      if (!woken && open) await stream.writeSSE({ event: 'ping', data: '{}' });
    }
  } finally {
    unsubscribe();
    deps.log.info({ node }, 'dns node unsubscribed');
  }
}
