import { isIP } from 'node:net';
import { validateConfig } from './config/load.js';
import { ownerName } from './config/record-values.js';
import type { RecordDoc, ZoneDoc } from './config/schema.js';
import type { Documents } from './db/documents.js';
import type { HealthStore } from './db/health-store.js';
import type { Store } from './db/store.js';
import { wireKey, zoneOf } from './dns/zone.js';
import { formatAddress, maskAddress, parseAddress } from './dns/address.js';
import { createLocator } from './geo/locator.js';
import { buildSnapshot } from './snapshot/snapshot.js';
import type { ServingState } from './snapshot/source.js';
import { steer } from './steer/steer.js';
import type { ClientFacts, Decision, Random } from './steer/types.js';

export type Explanation = {
  name: string;
  type: 'A' | 'AAAA';
  /** What DNS answers: addresses (or a CNAME), NODATA, NXDOMAIN, or REFUSED for names outside the zone. */
  outcome: 'answer' | 'nodata' | 'nxdomain' | 'refused';
  /** At a static name: the records of the type (or the name's CNAME) that answer, as configured. */
  records?: RecordDoc[];
  service?: string;
  pinnedRegion?: string;
  client?: ClientFacts;
  /** The ECS option DNS would echo, when the query had one. */
  ecs?: { subnet: string; scope: number };
  decision?: Decision;
  snapshotVersion: number;
};

export class ExplainError extends Error {}

/**
 * What DNS would answer `name` for a client, and why: the zone compiled by
 * the DNS server's own code, the client located as the server locates it,
 * and the one steer() function.
 */
export function explainQuery(
  state: ServingState,
  q: { name: string; type: 'A' | 'AAAA'; client: string; ecs?: string },
  random: Random = Math.random,
): Explanation {
  const { snapshot, locator } = state;
  const base = { name: q.name, type: q.type, snapshotVersion: snapshot.version };
  if (isIP(q.client) === 0) throw new ExplainError(`client "${q.client}" is not an IP address`);
  const zone = zoneOf(snapshot);
  const key = wireKey(q.name);
  const node = zone.nodes.get(key) ?? (zone.wildcards ? zone.wildcard(key) : undefined);
  if (!node) return { ...base, outcome: zone.nxdomain(key) ? 'nxdomain' : 'refused' };
  if (!node.dynamic) {
    const records = staticAnswer(snapshot.zone, node.name, q.type);
    return { ...base, outcome: records.length ? 'answer' : 'nodata', records };
  }

  let client: ClientFacts;
  let ecs: Explanation['ecs'];
  if (q.ecs !== undefined) {
    const [addr, len] = q.ecs.split('/');
    const bytes = parseAddress(addr ?? '');
    const prefix = Number(len ?? (bytes?.length === 4 ? 32 : 128));
    if (!bytes || !Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8)
      throw new ExplainError(`ecs "${q.ecs}" is not a subnet such as 36.66.0.0/24`);
    const masked = formatAddress(maskAddress(bytes, prefix));
    // Source prefix 0: the client opted out; locate by the resolver, answer for everyone (scope 0).
    client = prefix > 0 ? locator.locate(masked, prefix, 'ecs') : locator.locate(q.client, isIP(q.client) === 6 ? 128 : 32, 'resolver');
    ecs = { subnet: `${masked}/${prefix}`, scope: 0 };
  } else {
    client = locator.locate(q.client, isIP(q.client) === 6 ? 128 : 32, 'resolver');
  }
  const decision = steer(
    { service: node.dynamic.service, family: q.type === 'A' ? 4 : 6, pinnedRegion: node.dynamic.pinnedRegion, client },
    snapshot,
    random,
  );
  if (ecs && ecs.subnet.split('/')[1] !== '0') ecs.scope = decision.scope;
  return {
    ...base,
    outcome: decision.answers.length > 0 ? 'answer' : 'nodata',
    service: node.dynamic.service,
    pinnedRegion: node.dynamic.pinnedRegion,
    client,
    ecs,
    decision,
  };
}

/** The static records at `owner` that answer `type`: its RRset of the type, or the name's CNAME. */
function staticAnswer(zone: ZoneDoc, owner: string, type: 'A' | 'AAAA'): RecordDoc[] {
  const at = (zone.records ?? []).filter((r) => {
    const o = ownerName(r.name, zone.apex);
    return 'name' in o && o.name === owner.replace(/\.$/, '').toLowerCase();
  });
  const cname = at.filter((r) => r.type === 'CNAME');
  return cname.length ? cname : at.filter((r) => r.type === type);
}

/** Serving state from the database or from YAML documents, for one-shot use (CLI). */
export function loadState(source: { store?: Store; healthStore?: HealthStore; docs?: Documents }): ServingState {
  const config = source.docs ? validateConfig(source.docs) : source.store?.getConfig();
  if (!config) throw new ExplainError('no configuration: run `arus apply regions/` first');
  const health = source.docs ? undefined : source.healthStore?.loadHealth();
  const resolved = source.docs ? undefined : source.healthStore?.loadResolved();
  const snapshot = buildSnapshot(config, (source.store?.version() ?? 1) + (source.healthStore?.version() ?? 0), { health, resolved });
  return { snapshot, locator: createLocator({ database: config.zone.geoip.database, nets: config.zone.nets }) };
}

/** The explanation as an operator reads it. */
export function formatExplanation(e: Explanation): string {
  const lines = [`${e.name} ${e.type}: ${e.outcome.toUpperCase()}  (snapshot v${e.snapshotVersion})`];
  for (const r of e.records ?? []) lines.push(`  record   ${r.name} ${r.ttl} ${r.type} ${r.values.join(' ')}  (static)`);
  if (e.decision) {
    const d = e.decision;
    const cname = d.answers[0]?.cname;
    const shown = cname !== undefined ? `CNAME ${cname}` : [...new Set(d.answers.flatMap((a) => a.addresses))].join(' ');
    if (d.answers.length) lines.push(`  answer   ${shown}  (region ${d.region}, ttl ${d.ttl})`);
    if (e.ecs) lines.push(`  ecs      ${e.ecs.subnet} scope /${e.ecs.scope}`);
    if (d.failedOpen) lines.push('  FAILED OPEN: no candidate was healthy');
    lines.push('  trace');
    for (const t of d.trace) lines.push(`    ${t}`);
  }
  return lines.join('\n');
}
