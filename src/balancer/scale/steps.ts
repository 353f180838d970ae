// The steps a pool's signal calls for: up (a draining instance back first,
// then the provider's new ones), down (draining, after the cool-down, to the
// highest count wanted over it), drains finished or cut at their deadline,
// and the webhook told of the figures.
import type { AutoscaleDoc } from '../../config/scaling-schema.js';
import { isLive } from '../proxy/dispatch.js';
import type { Pool } from '../pool.js';
import type { Instance, InstanceState } from '../types.js';
import type { PoolScaling, ScaleProvider } from './provider.js';
import type { PoolFigures, ScaleEventKind } from './report.js';
import type { ScaleSignal, Signal } from './signals.js';

/** A webhook that failed is tried again this long after, at the latest. */
const ANNOUNCE_RETRY_MS = 5000;

export type Drain = { instance: Instance; since: number; deadline: number };

export type PoolRun = {
  model: string;
  o: AutoscaleDoc;
  signal: ScaleSignal;
  last?: Signal;
  /** Desired counts over the scale-down window, oldest first. */
  wanted: { t: number; n: number }[];
  since: number;
  lastStep: number;
  launching: number;
  draining: Map<string, Drain>;
  /** The webhook: the figures last delivered, the drained instances not yet delivered, an announce under way. */
  delivered?: string;
  drained: Instance[];
  announcing: boolean;
  failedAt: number;
  /** The count last stepped to: a webhook's instances come when its receiver adds them, and the same ask is not repeated meanwhile. */
  asked?: number;
};

/** What the steps share with the scaler. */
export type StepContext = {
  region: string;
  pool: Pick<Pool, 'setDraining'>;
  /** Instances the local provider runs, by id. */
  extra: Map<string, Instance>;
  seenReady: Set<string>;
  joined: Map<string, number>;
  now: () => number;
  isStopped: () => boolean;
  event: (kind: ScaleEventKind, subject: string, oldState: string, newState: string, reason: string) => void;
  poolSubject: (model: string) => string;
  instanceSubject: (id: string) => string;
  apply: () => void;
  figuresOf: (run: PoolRun) => PoolFigures;
  states: () => readonly InstanceState[];
  queued: (prefix: string) => number;
  slowStartMs: () => number;
  providerOf: (run: PoolRun) => ScaleProvider | undefined;
};

export function scaleUp(c: StepContext, run: PoolRun, signal: Signal, active: number, t: number, provider: ScaleProvider): void {
  run.lastStep = t;
  run.asked = signal.desired;
  let need = signal.desired - active;
  c.event('scale.up', c.poolSubject(run.model), `${active} instances`, `${signal.desired} instances`, signal.reason);
  // Draining instances are still there, model loaded: back into service first.
  for (const d of [...run.draining.values()]) {
    if (need === 0) break;
    if (!c.pool.setDraining(d.instance.id, false)) continue;
    run.draining.delete(d.instance.id);
    need--;
    c.event('scale.instance.ready', c.instanceSubject(d.instance.id), 'draining', 'serving', 'back into service: demand rose while it drained');
  }
  if (!provider.launch) return;
  for (let i = 0; i < need; i++) {
    run.launching++;
    provider.launch(run.model).then(
      (instance) => {
        run.launching--;
        if (c.isStopped()) return void provider.stop?.(instance);
        c.extra.set(instance.id, instance);
        c.joined.set(instance.id, c.now());
        c.apply();
        c.event('scale.instance.warming', c.instanceSubject(instance.id), 'absent', 'warming', `started at ${instance.url} by the local provider: no traffic until its readiness check passes (model loaded)`);
      },
      (err: unknown) => {
        run.launching--;
        c.event('scale.provider.failed', c.poolSubject(run.model), 'launching', 'absent', (err as Error).message);
      },
    );
  }
}

export function scaleDown(c: StepContext, run: PoolRun, states: InstanceState[], active: number, floor: number, t: number, provider: ScaleProvider): void {
  // The local provider removes only what it started; a webhook's receiver removes any instance it is told of.
  const candidates = states
    .filter((s) => !s.draining && (provider.launch ? c.extra.has(s.instance.id) : true))
    .sort((a, b) => Number(c.seenReady.has(a.instance.id)) - Number(c.seenReady.has(b.instance.id)) || a.outstanding - b.outstanding || (c.joined.get(b.instance.id) ?? 0) - (c.joined.get(a.instance.id) ?? 0));
  const chosen = candidates.slice(0, active - floor);
  if (chosen.length === 0) return;
  run.lastStep = t;
  run.asked = active - chosen.length;
  c.event('scale.down', c.poolSubject(run.model), `${active} instances`, `${active - chosen.length} instances`, `at most ${floor} wanted over the last ${run.o.scaleDownCooldownMs / 1000} s: ${run.last!.reason}`);
  for (const s of chosen) {
    c.pool.setDraining(s.instance.id, true);
    run.draining.set(s.instance.id, { instance: s.instance, since: t, deadline: t + run.o.drainTimeoutMs });
    c.event('scale.instance.draining', c.instanceSubject(s.instance.id), 'serving', 'draining', `no new requests; ${s.outstanding} in flight may finish within ${run.o.drainTimeoutMs / 1000} s`);
  }
}

export function finishDrains(c: StepContext, run: PoolRun, states: InstanceState[], t: number, provider: ScaleProvider | undefined): void {
  for (const [id, d] of run.draining) {
    const s = states.find((x) => x.instance.id === id);
    const left = s?.outstanding ?? 0;
    if (left > 0 && t < d.deadline) continue;
    run.draining.delete(id);
    c.seenReady.delete(id);
    c.joined.delete(id);
    const how = left === 0 ? `drained in ${((t - d.since) / 1000).toFixed(1)} s` : `the ${run.o.drainTimeoutMs / 1000} s drain deadline passed with ${left} requests in flight: cut`;
    if (c.extra.delete(id)) {
      c.apply();
      void provider?.stop?.(d.instance);
      c.event('scale.instance.removed', c.instanceSubject(id), 'draining', 'absent', `${how}; its process stopped`);
    } else {
      run.drained.push(d.instance);
      c.event('scale.instance.removed', c.instanceSubject(id), 'draining', 'drained', `${how}; the webhook is told to remove it (it stays out of service until the configuration drops it)`);
    }
  }
}

export function announce(c: StepContext, run: PoolRun, provider: ScaleProvider, t: number): void {
  if (run.announcing) return;
  const f = c.figuresOf(run);
  const figures: PoolScaling = { region: c.region, model: run.model, desired: f.desired, current: f.current, warming: f.warming, draining: f.draining, reason: run.last!.reason };
  const drained = [...run.drained];
  const key = JSON.stringify([f.desired, drained.map((i) => i.id)]);
  if (key === run.delivered && drained.length === 0) return;
  if (run.failedAt > t - ANNOUNCE_RETRY_MS) return;
  run.announcing = true;
  provider.announce!(figures, drained).then(
    () => {
      run.announcing = false;
      run.delivered = key;
      run.drained = run.drained.filter((i) => !drained.includes(i));
      c.event('scale.webhook.delivered', c.poolSubject(run.model), `${f.current} instances`, `${f.desired} desired`, `the webhook took the desired count${drained.length ? ` and ${drained.length} drained instance(s) to remove` : ''}`);
    },
    (err: unknown) => {
      run.announcing = false;
      run.failedAt = c.now();
      c.event('scale.webhook.failed', c.poolSubject(run.model), `${f.current} instances`, `${f.desired} desired`, `${(err as Error).message}; tried again within ${ANNOUNCE_RETRY_MS / 1000} s`);
    },
  );
}


export function figuresOf(c: StepContext, run: PoolRun, states = c.states().filter((s) => s.instance.models.includes(run.model))): PoolFigures {
  const t = c.now();
  const draining = states.filter((s) => s.draining).length;
  const warming = run.launching + states.filter((s) => !s.draining && !c.seenReady.has(s.instance.id)).length;
  return {
    model: run.model,
    desired: run.last?.desired ?? states.length,
    current: states.length + run.launching,
    warming,
    draining,
    ready: states.filter((s) => isLive(s, t)).length,
    scaling: run.o.provider?.kind ?? 'off',
  };
}

export function sample(c: StepContext, run: PoolRun, states: InstanceState[], t: number): void {
  const live = states.filter((s) => isLive(s, t));
  const ewmas = live.map((s) => s.ewmaMs).filter((x): x is number => x !== undefined);
  run.signal.add({
    t,
    outstanding: states.reduce((n, s) => n + s.outstanding, 0),
    queued: c.queued(`${run.model}|`),
    live: live.length,
    ...(ewmas.length ? { serviceMs: ewmas.reduce((a, b) => a + b, 0) / ewmas.length } : {}),
  });
  run.last = run.signal.read();
}

export function noteReady(c: StepContext, states: readonly InstanceState[], t: number): void {
  for (const s of states) {
    const id = s.instance.id;
    if (!s.ready || c.seenReady.has(id)) continue;
    c.seenReady.add(id);
    const at = c.joined.get(id);
    if (at !== undefined) c.event('scale.instance.ready', c.instanceSubject(id), 'warming', 'serving', `ready ${((t - at) / 1000).toFixed(1)} s after it joined: takes traffic, ramping up over the ${(c.slowStartMs() / 1000).toFixed(0)} s slow start`);
  }
}

export function step(c: StepContext, run: PoolRun, states: InstanceState[], t: number): void {
  const provider = c.providerOf(run);
  const signal = run.last!;
  run.wanted.push({ t, n: signal.desired });
  while (run.wanted.length && run.wanted[0].t < t - run.o.scaleDownCooldownMs) run.wanted.shift();
  finishDrains(c, run, states, t, provider);
  if (!provider) return;
  const active = states.filter((s) => !s.draining).length + run.launching;
  // A local launch is counted in `active` at once (and a lost one is replaced); a webhook's ask stands until its receiver acts.
  const askedAlready = !provider.launch && signal.desired === run.asked;
  if (signal.desired > active && !askedAlready && t - run.lastStep >= run.o.scaleUpCooldownMs) scaleUp(c, run, signal, active, t, provider);
  else if (signal.desired < active && t - run.lastStep >= run.o.scaleDownCooldownMs && t - run.since >= run.o.scaleDownCooldownMs) {
    const floor = Math.max(...run.wanted.map((w) => w.n));
    if (floor < active) scaleDown(c, run, states, active, floor, t, provider);
  }
  if (provider.announce) announce(c, run, provider, t);
}

