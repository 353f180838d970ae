// Control's metrics: each region's state read at scrape time, the rows of the
// events history (failovers among them), probe results as they arrive, and
// requests refused for speaking for another identity than their credential's.
import { Counter, Gauge, type Registry } from 'prom-client';

export type RegionState = 'up' | 'degraded' | 'down';
const REGION_STATES: readonly RegionState[] = ['up', 'degraded', 'down'];

const FAILOVER_KINDS = ['failover', 'failback'];
/** Distinct `agent_region` labels kept; the region is the agent's word, so past this it is `other`. */
export const MAX_AGENT_REGIONS = 64;

/** Registers the region, events and probe metrics on `registry`, in that order. */
export function registerControlMetrics(prefix: string, registry: Registry) {
  const registers = [registry];

  let regionStates: (() => Iterable<[string, RegionState]>) | undefined;
  const regionState: Gauge<'region' | 'state'> = new Gauge({
    name: `${prefix}region_state`,
    help: 'Each region\'s state as control sees it now: 1 for its state (up, degraded, down), 0 for the others.',
    labelNames: ['region', 'state'],
    registers,
    collect: () => {
      regionState.reset();
      for (const [region, state] of regionStates?.() ?? []) for (const s of REGION_STATES) regionState.set({ region, state: s }, s === state ? 1 : 0);
    },
  });

  const events = new Counter({ name: `${prefix}events_total`, help: 'Rows written to the events history, by kind.', labelNames: ['kind'], registers });
  const failovers = new Counter({ name: `${prefix}failovers_total`, help: 'Clients moved away from a region (failover) or back to it (failback).', labelNames: ['kind'], registers });
  for (const kind of FAILOVER_KINDS) failovers.inc({ kind }, 0);
  const probes = new Counter({ name: `${prefix}probe_results_total`, help: 'Probe results received, by the reporting agent\'s region and outcome.', labelNames: ['agent_region', 'result'], registers });
  const agentRegions = new Set<string>();
  const refused = new Counter({
    name: `${prefix}api_identity_refused_total`,
    help: 'Requests refused (403) for speaking for another identity than their credential names: a probe report for another agent or region, capacity for another region, a DNS node under another name. By the credential\'s role and the binding broken.',
    labelNames: ['role', 'binding'],
    registers,
  });
  for (const [role, binding] of [['probe', 'agent'], ['probe', 'region'], ['balancer', 'region'], ['dns', 'node']]) refused.inc({ role, binding }, 0);

  return {
    observeRegions: (read: () => Iterable<[string, RegionState]>) => void (regionStates = read),
    recordEvent(kind: string) {
      events.inc({ kind });
      if (FAILOVER_KINDS.includes(kind)) failovers.inc({ kind });
    },
    recordIdentityRefused(role: string, binding: string) {
      refused.inc({ role, binding });
    },
    recordProbeResults(results: readonly { ok: boolean; endpoint: string }[], agentRegion: string) {
      let ok = 0;
      for (const r of results) if (r.ok) ok++;
      if (!agentRegions.has(agentRegion) && agentRegions.size < MAX_AGENT_REGIONS) agentRegions.add(agentRegion);
      const region = agentRegions.has(agentRegion) ? agentRegion : 'other';
      probes.inc({ agent_region: region, result: 'ok' }, ok);
      probes.inc({ agent_region: region, result: 'fail' }, results.length - ok);
    },
  };
}
