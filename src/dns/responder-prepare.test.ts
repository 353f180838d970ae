// A state prepared ahead (Responder.prepare): its zone compiled and the
// answers of sampled queries made before it is current, so that the queries
// after the swap call steer() no more, and nothing was counted as answered.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import type { ServingState } from '../snapshot/source.js';
import { defaultConfig, ecsOf, query, servingState } from './fixtures.js';
import { createResponder } from './responder.js';

const remote = { address: '198.51.100.7', port: 5353, family: 'IPv4' as const };
const asks = ['36.66.0.0/24', '165.21.0.0/16', '171.96.0.0/16', '112.198.0.0/16'].flatMap((cidr) => [1, 28].map((type) => query({ name: 'api.gslb.example.com', type, opt: { options: [ecsOf(cidr)] } })));

describe('Responder.prepare: the next state made ahead', () => {
  const setup = () => {
    let state: ServingState = servingState(defaultConfig(), 1);
    const r = createResponder({ getState: () => state, log: silentLogger() });
    for (const q of asks) r(q, remote, 'udp');
    return { r, swap: (s: ServingState) => void (state = s) };
  };

  it('after the swap, the sampled queries are answered without steer() and without compiling again', async () => {
    const { r, swap } = setup();
    const next = servingState(defaultConfig(), 2);
    const before = { steer: r.stats.steerCalls, compiles: r.stats.compiles, answers: r.stats.answersByRegion.reduce((a, b) => a + b, 0) };
    await r.prepare(next, asks.map((packet) => ({ packet, address: remote.address })));
    expect(r.stats.compiles).toBe(before.compiles + 1);
    expect(r.stats.steerCalls).toBeGreaterThan(before.steer);
    // Preparing answered nobody.
    expect(r.stats.answersByRegion.reduce((a, b) => a + b, 0)).toBe(before.answers);
    const prepared = r.stats.steerCalls;
    swap(next);
    const replies = asks.map((q) => r(q, remote, 'udp'));
    expect(replies.every((x) => x !== undefined && x.readUInt16BE(6) > 0)).toBe(true);
    expect(r.stats.steerCalls).toBe(prepared);
    expect(r.stats.compiles).toBe(before.compiles + 1);
  });

  it('without it, the first queries after a swap pay steer() again', () => {
    const { r, swap } = setup();
    const steer = r.stats.steerCalls;
    swap(servingState(defaultConfig(), 2));
    for (const q of asks) r(q, remote, 'udp');
    expect(r.stats.steerCalls).toBeGreaterThan(steer);
  });

  it('a state prepared but never made current is dropped for the one that is', async () => {
    const { r, swap } = setup();
    await r.prepare(servingState(defaultConfig(), 2), []);
    const compiles = r.stats.compiles;
    swap(servingState(defaultConfig(), 3));
    r(asks[0], remote, 'udp');
    expect(r.stats.compiles).toBe(compiles + 1);
  });
});
