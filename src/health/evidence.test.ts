import { describe, expect, it } from 'vitest';
import { commonError, describeVotes, median } from './evidence.js';

const ok = (rttMs?: number, at = 0) => ({ ok: true, rttMs, at });
const bad = (error?: string, at = 0) => ({ ok: false, error, at });

describe('describeVotes', () => {
  it.each([
    { state: 'up' as const, votes: [ok(1), ok(1.2), ok(1.4), ok(2)], n: 4, want: '4 of 4 agents: ok (rtt 1.3 ms median)' },
    { state: 'up' as const, votes: [ok(), ok()], n: 2, want: '2 of 2 agents: ok' },
    { state: 'down' as const, votes: [bad('E'), bad('E'), bad('E'), ok(3)], n: 4, want: '3 of 4 agents: E; 1 of 4 agents: ok (rtt 3.0 ms median)' },
    { state: 'up' as const, votes: [bad('E'), bad('E'), bad('E'), ok(3)], n: 4, want: '1 of 4 agents: ok (rtt 3.0 ms median); 3 of 4 agents: E' },
    { state: 'down' as const, votes: [bad('E')], n: 3, want: '1 of 3 agents: E; 2 of 3 agents: no recent result' },
  ])('$want', ({ state, votes, n, want }) => {
    expect(describeVotes(state, votes, n)).toBe(want);
  });
});

describe('commonError', () => {
  it.each([
    { votes: [bad('A'), bad('B'), bad('B')], want: 'B' },
    { votes: [bad('B', 1), bad('A', 2)], want: 'A' }, // tie: most recent
    { votes: [bad('B', 2), bad('A', 2)], want: 'A' }, // tie at the same time: alphabetical
    { votes: [bad(), bad(' ')], want: 'failed' },
  ])('$want', ({ votes, want }) => {
    expect(commonError(votes)).toBe(want);
  });
});

describe('median', () => {
  it.each([
    [[3], 3],
    [[3, 1], 2],
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
  ])('%j → %d', (values, want) => {
    expect(median(values)).toBe(want);
  });
});
