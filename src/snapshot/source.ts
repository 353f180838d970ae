import type { Config } from '../config/schema.js';
import { createLocator, type Locator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import { buildSnapshot, type EndpointHealthInput, type ResolvedMap, type Snapshot } from './snapshot.js';

/** What a DNS node answers from: a snapshot and the locator built from the same zone settings. */
export type ServingState = { readonly snapshot: Snapshot; readonly locator: Locator };

export interface StateSource {
  /** The current state; swapped atomically, never mutated. */
  current(): ServingState;
  /** A source with work to finish (a file write) resolves once it is done. */
  stop(): void | Promise<void>;
}

type ConfigReader = { version(): number; getConfig(): Config | undefined };
type HealthReader = { version(): number; loadHealth(): ReadonlyMap<string, EndpointHealthInput>; loadResolved?(): ResolvedMap };

/**
 * Serves snapshots built from the database, re-reading it when its version
 * moves (checked every `intervalMs`, a single indexed read). A failed rebuild
 * keeps the last good state: a DNS node never stops answering because a
 * change could not be applied.
 */
export function createDbStateSource(deps: { store: ConfigReader; healthStore?: HealthReader; log: Logger; intervalMs?: number }): StateSource & {
  /** Re-reads the database now; true when the state changed. */
  refresh(): boolean;
} {
  const { store, healthStore, log } = deps;
  // The same serial control gives its snapshots.
  const version = () => store.version() + (healthStore?.version() ?? 0);
  let state = build();
  const timer = setInterval(() => {
    try {
      refresh();
    } catch (err) {
      log.error({ err }, 'snapshot refresh failed; keeping the last good snapshot');
    }
  }, deps.intervalMs ?? 250);
  timer.unref();

  function build(previous?: ServingState): ServingState {
    const config = store.getConfig();
    if (!config) throw new Error('the database holds no configuration: run `arus apply regions/` first');
    const snapshot = buildSnapshot(config, version(), { health: healthStore?.loadHealth(), resolved: healthStore?.loadResolved?.() });
    const sameGeo =
      previous && JSON.stringify(previous.snapshot.zone.geoip) === JSON.stringify(config.zone.geoip) &&
      JSON.stringify(previous.snapshot.zone.nets) === JSON.stringify(config.zone.nets);
    const locator = sameGeo ? previous.locator : createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
    return { snapshot, locator };
  }

  function refresh(): boolean {
    if (version() === state.snapshot.version) return false;
    const next = build(state);
    log.info({ version: next.snapshot.version, previous: state.snapshot.version }, 'snapshot updated');
    state = next;
    return true;
  }

  return {
    current: () => state,
    refresh,
    stop: () => clearInterval(timer),
  };
}
