import type { Vote } from './types.js';

type Seen = Pick<Vote, 'ok' | 'rttMs' | 'error' | 'at'>;

/**
 * What the fresh voters currently see, out of the live agents (`electorate`), the side matching `state` first:
 * `3 of 4 agents: connect ECONNREFUSED 127.0.1.21:8000; 1 of 4 agents: ok (rtt 1.2 ms median)`.
 */
export function describeVotes(state: 'up' | 'down', fresh: readonly Seen[], electorate = fresh.length): string {
  const n = Math.max(electorate, fresh.length);
  const passing = fresh.filter((v) => v.ok);
  const failing = fresh.filter((v) => !v.ok);
  const ok = passing.length ? `${passing.length} of ${n} agents: ${okText(passing)}` : '';
  const bad = failing.length ? `${failing.length} of ${n} agents: ${commonError(failing)}` : '';
  const quiet = n - fresh.length ? `${n - fresh.length} of ${n} agents: no recent result` : '';
  return [...(state === 'up' ? [ok, bad] : [bad, ok]), quiet].filter(Boolean).join('; ');
}

function okText(passing: readonly Seen[]): string {
  const rtts = passing.flatMap((v) => (v.rttMs !== undefined && Number.isFinite(v.rttMs) ? [v.rttMs] : []));
  return rtts.length ? `ok (rtt ${median(rtts).toFixed(1)} ms median)` : 'ok';
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The most common error; ties go to the most recently seen, then alphabetical order, so the text is stable. */
export function commonError(failing: readonly Seen[]): string {
  const tally = new Map<string, { count: number; last: number }>();
  for (const v of failing) {
    const text = v.error?.trim() || 'failed';
    const t = tally.get(text) ?? { count: 0, last: -Infinity };
    tally.set(text, { count: t.count + 1, last: Math.max(t.last, v.at) });
  }
  const ranked = [...tally].sort(([a, x], [b, y]) => y.count - x.count || y.last - x.last || (a < b ? -1 : a > b ? 1 : 0));
  return ranked[0]?.[0] ?? 'failed';
}
