// Adding up the counters of several responders and servers (one per DNS
// worker): numbers add, arrays add slot by slot, and answers by region add by
// region name (each worker numbers the regions in the order it met them).
import { createResponderStats, type ResponderStats } from '../responder-stats.js';
import type { DnsServerStats } from '../server.js';

export type Summed = { responder: ResponderStats; server: DnsServerStats };

export function sumStats(parts: readonly { responder: ResponderStats; server: DnsServerStats }[]): Summed {
  const responder = createResponderStats();
  const server = {} as Record<string, number>;
  for (const p of parts) {
    addInto(responder, p.responder);
    p.responder.answerRegions.forEach((region, i) => {
      let slot = responder.answerRegions.indexOf(region);
      if (slot < 0) {
        slot = responder.answerRegions.push(region) - 1;
        responder.answersByRegion[slot] = 0;
      }
      responder.answersByRegion[slot] += p.responder.answersByRegion[i] ?? 0;
    });
    for (const [k, v] of Object.entries(p.server)) if (typeof v === 'number') server[k] = (server[k] ?? 0) + v;
  }
  return { responder, server: server as DnsServerStats };
}

function addInto(total: ResponderStats, part: ResponderStats): void {
  const into = total as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(part)) {
    if (k === 'answerRegions' || k === 'answersByRegion') continue;
    if (typeof v === 'number') into[k] = ((into[k] as number | undefined) ?? 0) + v;
    else if (Array.isArray(v) && Array.isArray(into[k])) {
      const a = into[k] as number[];
      v.forEach((x, i) => (a[i] = (a[i] ?? 0) + (x as number)));
    }
  }
}

/**
 * Copies `from` into `into` in place (the objects metrics read at scrape time stay the same
 * objects): counters only grow, so a reading missing a worker that did not answer in time keeps
 * the value before it.
 */
export function copyStats(into: ResponderStats, from: ResponderStats): void {
  const target = into as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(from)) {
    if (typeof v === 'number') target[k] = Math.max(v, (target[k] as number | undefined) ?? 0);
    else if (k === 'answerRegions') {
      for (const r of v as string[]) if (!into.answerRegions.includes(r)) into.answerRegions.push(r);
    } else if (k === 'answersByRegion') {
      from.answerRegions.forEach((r, i) => {
        const slot = into.answerRegions.indexOf(r);
        into.answersByRegion[slot] = Math.max(into.answersByRegion[slot] ?? 0, from.answersByRegion[i] ?? 0);
      });
    } else if (Array.isArray(v)) {
      const a = target[k] as number[];
      v.forEach((x, i) => (a[i] = Math.max(a[i] ?? 0, x as number)));
    }
  }
}
