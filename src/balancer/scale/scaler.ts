// The scaler: every model pool's signal (signals.ts), and for a pool with an
// `autoscale.provider`, the steps that follow it. Up: a draining instance
// goes back into service first, then the provider adds instances, which take
// no traffic until their readiness check passes and then ramp through slow
// start (the pool does both). Down: only to the highest count wanted over
// the cool-down window, and only that long after the last step; the
// instances go draining (no new requests) and are removed once their
// requests and streams are done, or at the drain deadline. Every step is an
// event, which the capacity report carries to control's history.
import { autoscaleSchema, type AutoscaleDoc } from '../../config/scaling-schema.js';
import type { BalancerDoc } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Pool } from '../pool.js';
import type { Instance, RequestKind } from '../types.js';
import { createLocalProvider } from './local.js';
import type { ScaleProvider } from './provider.js';
import type { PoolFigures, ScaleEvent, ScaleEventKind } from './report.js';
import { createSignal } from './signals.js';
import { figuresOf, noteReady, sample, step, type PoolRun, type StepContext } from './steps.js';
import { createWebhookProvider } from './webhook.js';

/** Settings of a pool without an `autoscale` block: its signal is exported, nothing acts on it. */
const SIGNAL_ONLY: AutoscaleDoc = { ...autoscaleSchema.parse({}), min: 0, max: 1000 };
const MAX_EVENTS = 500;

export interface Scaler {
  /** Instances the local provider runs, beside the configured ones. */
  extra(): Instance[];
  figures(): PoolFigures[];
  /** Events not yet delivered, oldest first; `ack(n)` once the first n reached control. */
  events(): readonly ScaleEvent[];
  ack(n: number): void;
  configure(doc: BalancerDoc): void;
  /** One look at every pool, and the steps it calls for (the timer runs it every interval). */
  tick(): void;
  stop(): Promise<void>;
}

export type ScalerDeps = {
  region: string;
  doc: BalancerDoc;
  pool: Pick<Pool, 'states' | 'setDraining'>;
  /** Requests waiting in the balancer's queue whose key starts with a prefix (`<model>|`). */
  queued: (prefix: string) => number;
  /** The pool's instance list changed (extra() moved): give it to the pool and check the new ones. */
  apply: () => void;
  log: Logger;
  now?: () => number;
  env?: NodeJS.ProcessEnv;
  /** The local provider's and the webhook's, in tests. */
  providers?: { local?: typeof createLocalProvider; webhook?: typeof createWebhookProvider };
};

export function createScaler(deps: ScalerDeps): Scaler {
  const { region, pool, log } = deps;
  const now = deps.now ?? Date.now;
  let doc = deps.doc;
  const runs = new Map<string, PoolRun>();
  const extra = new Map<string, Instance>();
  const seenReady = new Set<string>();
  const joined = new Map<string, number>();
  const pending: ScaleEvent[] = [];
  let providers = new Map<string, { key: string; provider: ScaleProvider }>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const event = (kind: ScaleEventKind, subject: string, oldState: string, newState: string, reason: string) => {
    if (pending.length >= MAX_EVENTS) pending.shift();
    pending.push({ kind, subject, oldState, newState, reason, at: now() });
    log.info({ kind, subject, from: oldState, to: newState, reason }, 'scaling');
  };
  const poolSubject = (model: string) => `pool:${region}/${model}`;
  const instanceSubject = (id: string) => `instance:${region}/${id}`;
  const kindsOf = (model: string): RequestKind[] => [...(doc.instances.find((i) => i.models.includes(model))?.kinds ?? ['chat', 'completion', 'embeddings'])];

  function makeProviders(next: BalancerDoc): Map<string, { key: string; provider: ScaleProvider }> {
    const made = new Map<string, { key: string; provider: ScaleProvider }>();
    for (const [model, o] of Object.entries(next.autoscale ?? {})) {
      if (!o.provider) continue;
      const key = JSON.stringify(o.provider);
      const old = providers.get(model);
      if (old?.key === key) {
        made.set(model, old);
        continue;
      }
      const provider =
        o.provider.kind === 'local'
          ? (deps.providers?.local ?? createLocalProvider)({ doc: o.provider, kindsOf, log, onLost: (i, why) => lost(model, i, why) })
          : (deps.providers?.webhook ?? createWebhookProvider)(o.provider, deps.env ?? process.env);
      made.set(model, { key, provider });
    }
    return made;
  }

  function configure(next: BalancerDoc): void {
    // A provider that cannot be made (a webhook without its token) throws here, before anything changed.
    const made = makeProviders(next);
    for (const [model, p] of providers) if (made.get(model) !== p) void p.provider.close();
    providers = made;
    doc = next;
    const slots = next.maxConcurrentPerInstance;
    const models = new Set([...next.instances.flatMap((i) => i.models), ...Object.keys(next.autoscale ?? {})]);
    for (const model of models) {
      const o = next.autoscale?.[model] ?? SIGNAL_ONLY;
      const run = runs.get(model);
      if (run) {
        run.o = o;
        run.signal.configure({ ...o, slots });
      } else
        runs.set(model, { model, o, signal: createSignal({ ...o, slots }), wanted: [], since: now(), lastStep: -Infinity, launching: 0, draining: new Map(), drained: [], announcing: false, failedAt: -Infinity });
    }
    for (const model of runs.keys()) if (!models.has(model)) runs.delete(model);
    const interval = Math.min(500, ...Object.values(next.autoscale ?? {}).map((a) => a.intervalMs));
    if (timer) clearInterval(timer);
    timer = setInterval(tick, interval);
    timer.unref();
  }

  function lost(model: string, instance: Instance, why: string): void {
    if (!extra.delete(instance.id)) return;
    runs.get(model)?.draining.delete(instance.id);
    deps.apply();
    event('scale.instance.lost', instanceSubject(instance.id), seenReady.has(instance.id) ? 'serving' : 'warming', 'absent', `${why}: replaced if demand still wants it`);
  }

  const ctx: StepContext = { region, pool, extra, seenReady, joined, now, isStopped: () => stopped, event, poolSubject, instanceSubject, apply: deps.apply, figuresOf: (run) => figuresOf(ctx, run), states: () => pool.states(), queued: deps.queued, slowStartMs: () => doc.slowStartMs, providerOf: (run) => (run.o.provider ? providers.get(run.model)?.provider : undefined) };

  function tick(): void {
    if (stopped) return;
    const t = now();
    const all = pool.states();
    noteReady(ctx, all, t);
    for (const run of runs.values()) {
      const states = all.filter((s) => s.instance.models.includes(run.model));
      sample(ctx, run, states, t);
      step(ctx, run, states, t);
    }
  }

  configure(doc);

  return {
    extra: () => [...extra.values()],
    figures: () => [...runs.values()].map((r) => figuresOf(ctx, r)),
    events: () => pending,
    ack: (n) => void pending.splice(0, n),
    configure,
    tick,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await Promise.all([...providers.values()].map((p) => p.provider.close()));
    },
  };
}
