import type { Api, ApiDeps } from '../deps.js';
import { recordRoutes } from './records.js';
import { regionRoutes } from './regions.js';
import { serviceRoutes } from './services.js';
import { zoneRoutes } from './zone.js';

/** Regions, services, the zone's settings and its static records: the configuration, written through the store like `arus apply`. */
export function configRoutes(app: Api, deps: ApiDeps) {
  regionRoutes(app, deps);
  serviceRoutes(app, deps);
  zoneRoutes(app, deps);
  recordRoutes(app, deps);
}
