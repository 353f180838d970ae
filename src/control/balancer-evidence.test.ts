import { describe, expect, it } from 'vitest';
import { createBalancerEvidence } from './balancer-evidence.js';
import type { CapacityReport } from './capacity.js';

const report = (over: Partial<CapacityReport> & { at: number }): CapacityReport => ({ region: 'jkt', balancer: 'lb-1', instances: 2, ready: 2, outstanding: 0, freeConcurrency: 32, queueDepth: 0, ...over });

describe('balancer evidence', () => {
  it('claims a region whose every fresh balancer has no ready instance, naming the balancer and its instances', () => {
    const e = createBalancerEvidence();
    expect(e.report(report({ at: 0 }))).toBeUndefined();
    const started = e.report(report({ at: 100, ready: 0, unavailable: [{ id: 'g1', reason: 'ejected' }, { id: 'g2', reason: 'not ready' }] }));
    expect(started).toBe('balancer lb-1: 0 of 2 instances ready (g1: ejected; g2: not ready)');
    expect(e.down().get('jkt')).toMatchObject({ balancers: ['lb-1'], since: 100 });
    // A second report saying the same is no change.
    expect(e.report(report({ at: 200, ready: 0 }))).toBeUndefined();
  });

  it('needs every fresh balancer of the region to say so: one with ready instances keeps it up', () => {
    const e = createBalancerEvidence();
    e.report(report({ at: 0, balancer: 'lb-2' }));
    expect(e.report(report({ at: 10, ready: 0 }))).toBeUndefined();
    expect(e.down().size).toBe(0);
    // lb-2 silent past the stale window: lb-1 alone speaks.
    expect(e.tick(3_005)).toBe('balancer lb-1: 0 of 2 instances ready');
  });

  it('lifts the claim only after ready reports for the rise window, at once when the balancer goes silent', () => {
    const e = createBalancerEvidence({ staleMs: 3000, riseMs: 2000 });
    e.report(report({ at: 0, ready: 0 }));
    expect(e.report(report({ at: 500, ready: 1 }))).toBeUndefined();
    expect(e.tick(2400)).toBeUndefined();
    expect(e.down().has('jkt')).toBe(true);
    // A relapse restarts the window.
    e.report(report({ at: 2450, ready: 0 }));
    e.report(report({ at: 2500, ready: 2 }));
    expect(e.tick(4400)).toBeUndefined();
    expect(e.report(report({ at: 4500, ready: 2 }))).toBe('balancer lb-1: instances of jkt ready for 2 s');
    expect(e.down().size).toBe(0);

    const silent = createBalancerEvidence({ staleMs: 3000 });
    silent.report(report({ at: 0, ready: 0 }));
    expect(silent.tick(2999)).toBeUndefined();
    expect(silent.tick(3001)).toBe('balancer lb-1 of jkt silent for 3 s: its word no longer counts, the probes decide');
    expect(silent.down().size).toBe(0);
  });
});
