// The configuration control serves from: the document and its version, the
// locator built from its networks, and what probes check. Re-read when the
// store's version moves; the locator is rebuilt only when its inputs change.
import { endpointName, type Check, type Config } from '../config/schema.js';
import { createLocator, type Locator } from '../geo/locator.js';
import { endpointKey } from '../snapshot/snapshot.js';
import type { ConfigReader } from './storage.js';

export type Target = { endpoint: string; check: Check };

export interface ServedConfig {
  config(): Config;
  version(): number;
  locator(): Locator;
  /** What probes check; the version moves only when the list does. */
  targets(): { version: number; targets: Target[] };
  /** Every configured endpoint, probed or not: what the tracker tracks. */
  endpoints(): string[];
  /** Re-reads the configuration when the store's version moved; true when it did. */
  reload(): boolean;
}

export function createServedConfig(store: ConfigReader): ServedConfig {
  let config = requireConfig();
  let configVersion = store.version();
  let locator = createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
  let targetList = targetsOf(config);
  let targetsVersion = 1;

  function requireConfig(): Config {
    const c = store.getConfig();
    if (!c) throw new Error('the database holds no configuration: run `arus apply regions/` first');
    return c;
  }

  return {
    config: () => config,
    version: () => configVersion,
    locator: () => locator,
    targets: () => ({ version: targetsVersion, targets: targetList }),
    endpoints: () => targetList.map((x) => x.endpoint).concat(untargeted(config)),
    reload() {
      if (store.version() === configVersion) return false;
      const next = requireConfig();
      const geoChanged = JSON.stringify([next.zone.nets, next.zone.geoip]) !== JSON.stringify([config.zone.nets, config.zone.geoip]);
      config = next;
      configVersion = store.version();
      if (geoChanged) locator = createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
      const nextTargets = targetsOf(config);
      if (JSON.stringify(nextTargets) !== JSON.stringify(targetList)) targetsVersion++;
      targetList = nextTargets;
      return true;
    },
  };
}

/** What probes check: every endpoint with a health check. */
function targetsOf(config: Config): Target[] {
  return config.regions.flatMap((r) =>
    r.zones.flatMap((z) => z.endpoints.filter((e) => e.check).map((e) => ({ endpoint: endpointKey(r.id, z.id, endpointName(e)), check: e.check! }))),
  );
}

/** Endpoints without a check: tracked (so overrides apply) but never probed, so they keep the initial state. */
function untargeted(config: Config): string[] {
  return config.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.filter((e) => !e.check).map((e) => endpointKey(r.id, z.id, endpointName(e)))));
}
