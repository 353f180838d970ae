// A running balancer takes a new balancer section: instances added, removed
// or re-weighted, another strategy, other limits. Live state stays with every
// instance that keeps its id and URL (readiness, load, ejections, what the
// pickers learnt); requests under way finish on the instance they started on
// (a removed instance's connection pool closes once they are done); new
// requests see the new set at once. Listen addresses are the one thing that
// needs a restart.
import { balancerListen, type BalancerDoc } from '../config/schema.js';
import type { Logger } from '../log.js';
import { pickerOf } from './pickers/create-picker.js';
import type { Pool } from './pool.js';
import type { Proxy } from './proxy.js';
import type { Readiness } from './readiness.js';
import type { Instance } from './types.js';

/** What a new document changed: instance ids by fate, and the settings that moved. */
export type Reconfigured = {
  changed: boolean;
  added: string[];
  removed: string[];
  /** Same id, other weight, URL, models or kinds. */
  updated: string[];
  /** Top-level settings that moved (strategy, maxQueue, …). */
  settings: string[];
  /** Listen addresses asked for that only a restart can apply. */
  restartNeeded?: string[];
};

export type ReconfigureParts = {
  pool: Pick<Pool, 'setInstances' | 'reconfigure'>;
  proxy: Pick<Proxy, 'configure' | 'wake'>;
  readiness: Pick<Readiness, 'checkNew'>;
  log: Logger;
  /** Instances beside the document's: those the local scaler runs. */
  extra?: () => Instance[];
  /** The listen address came from the command line (`--listen`): the document's is not used at all. */
  listenFixed?: boolean;
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Applies `next` over `prev` to the running parts and says what changed; an identical document changes nothing. */
export function reconfigure(parts: ReconfigureParts, prev: BalancerDoc, next: BalancerDoc): Reconfigured {
  const { pool, proxy, readiness, log } = parts;
  const before = new Map(prev.instances.map((i) => [i.id, i]));
  const after = new Map(next.instances.map((i) => [i.id, i]));
  const added = next.instances.filter((i) => !before.has(i.id)).map((i) => i.id);
  const removed = prev.instances.filter((i) => !after.has(i.id)).map((i) => i.id);
  const updated = next.instances.filter((i) => before.has(i.id) && !same(before.get(i.id), i)).map((i) => i.id);
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)].filter((k) => k !== 'instances' && k !== 'listen')) as Set<keyof BalancerDoc>;
  const settings = [...keys].filter((k) => !same(prev[k], next[k]));
  const listenMoved = !parts.listenFixed && !same(balancerListen(prev), balancerListen(next));
  const restartNeeded = listenMoved ? balancerListen(next).map((l) => `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`) : undefined;
  if (restartNeeded)
    log.warn({ listen: restartNeeded, keeping: balancerListen(prev) }, 'the balancer section names other listen addresses: only a restart of the balancer applies them; the rest of the change is applied now');
  const changed = added.length + removed.length + updated.length + settings.length > 0;
  if (!changed) return { changed, added, removed, updated, settings, ...(restartNeeded ? { restartNeeded } : {}) };

  pool.setInstances([...next.instances.map((i) => ({ ...i })), ...(parts.extra?.() ?? [])]);
  pool.reconfigure({
    ...(next.strategy !== prev.strategy || !same(prev.prefix, next.prefix) ? { picker: pickerOf(next) } : {}),
    slowStartMs: next.slowStartMs,
    maxConcurrency: next.maxConcurrentPerInstance,
    // A block removed puts the defaults back.
    ...(!same(prev.outlier, next.outlier) ? { outlier: next.outlier ?? {} } : {}),
  });
  proxy.configure({ maxConcurrentPerInstance: next.maxConcurrentPerInstance, maxQueue: next.maxQueue, queueTimeoutMs: next.queueTimeoutMs, batching: next.batching, fallbacks: next.fallbacks, staleCache: next.staleCache });
  // New (or moved) instances are checked now, not at the next round: a new set serves within a second.
  if (added.length + updated.length > 0)
    void readiness.checkNew().then(
      () => proxy.wake(),
      (err: unknown) => log.debug({ err }, 'readiness check of the new instances failed; the next round checks them'),
    );
  log.info({ added, removed, updated, settings, strategy: next.strategy, instances: next.instances.length }, 'balancer reconfigured');
  return { changed, added, removed, updated, settings, ...(restartNeeded ? { restartNeeded } : {}) };
}
