// `arus events`: the history — failovers, health transitions, drains, config
// writes — read from the database, as a table or JSON.
import type { StoredEvent } from '../db/history.js';
import type { Command } from './command.js';
import { intOption, opt } from './options.js';
import { openStores } from './stores.js';

export const eventsCommand: Command = {
  usage: `arus events [--since 1h] [--until TIME] [--region ID] [--kind KIND] [--limit N] [--json] [--db FILE]

  --since, --until   a duration back from now (90s, 15m, 1h, 2d) or an ISO time
  --kind             e.g. failover, failback, endpoint.down, region.down, drain, fleet.blind`,
  options: { ...opt.db, since: { type: 'string' }, until: { type: 'string' }, region: { type: 'string' }, kind: { type: 'string' }, limit: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } },
  async run({ values }) {
    const { store } = await openStores(String(values.db));
    const events = store
      .listEvents({
        limit: intOption(values.limit, 'limit'),
        since: values.since ? parseSince(String(values.since), Date.now()) : undefined,
        until: values.until ? parseSince(String(values.until), Date.now()) : undefined,
        region: values.region as string | undefined,
        kind: values.kind as string | undefined,
      })
      .reverse();
    console.log(values.json ? JSON.stringify(events, null, 2) : formatEvents(events));
  },
};

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `1h`, `2d` back from `now`, or an ISO time; ms since the epoch. */
export function parseSince(text: string, now: number): number {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  if (m) return now - Number(m[1]) * UNITS[m[2]];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Error(`"${text}" is neither a duration (90s, 15m, 1h, 2d) nor a time`);
  return t;
}

/** The history as a table an operator reads in a terminal. */
export function formatEvents(events: readonly StoredEvent[]): string {
  if (events.length === 0) return 'no events';
  const rows = events.map((e) => [new Date(e.time).toISOString().replace('T', ' ').replace('Z', ''), e.kind, e.subject, `${e.oldState} → ${e.newState}`, e.reason]);
  const head = ['time (UTC)', 'kind', 'subject', 'change', 'reason'];
  const widths = head.slice(0, 4).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => [...r.slice(0, 4).map((c, i) => c.padEnd(widths[i])), r[4]].join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
