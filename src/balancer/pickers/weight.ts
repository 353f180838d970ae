// Weights are data on the host; slow start scales them while an instance warms.
import type { InstanceState, PickContext } from '../types.js';

export const DEFAULT_SLOW_START_MS = 30_000;
/** Share of its weight a just-ready instance starts with. */
export const SLOW_START_FLOOR = 0.1;

/** 0.1 at `readySince`, rising linearly to 1 after `slowStartMs`; 1 when not ramping. */
export function slowStartFactor(state: InstanceState, now: number, slowStartMs: number): number {
  if (state.readySince === undefined || slowStartMs <= 0) return 1;
  const elapsed = now - state.readySince;
  if (elapsed >= slowStartMs) return 1;
  if (elapsed <= 0) return SLOW_START_FLOOR;
  return SLOW_START_FLOOR + (1 - SLOW_START_FLOOR) * (elapsed / slowStartMs);
}

/** The instance's configured weight (never negative) scaled by its slow-start ramp. */
export function effectiveWeight(state: InstanceState, now: number, slowStartMs: number = DEFAULT_SLOW_START_MS): number {
  const w = state.instance.weight;
  if (!(w > 0)) return 0;
  return w * slowStartFactor(state, now, slowStartMs);
}

/** The slow-start window for this pick: the pool's, else the picker's own. */
export function windowOf(ctx: PickContext, fallback: number): number {
  return ctx.slowStartMs ?? fallback;
}

/** Candidates able to take traffic: weight 0 means drained. */
export function weighted(candidates: readonly InstanceState[], ctx: PickContext, slowStartMs: number): { state: InstanceState; weight: number }[] {
  const out: { state: InstanceState; weight: number }[] = [];
  for (const state of candidates) {
    const weight = effectiveWeight(state, ctx.now, windowOf(ctx, slowStartMs));
    if (weight > 0) out.push({ state, weight });
  }
  return out;
}

/** Draw one entry with probability weight / total. */
export function drawWeighted<T extends { weight: number }>(items: readonly T[], random: () => number): T | undefined {
  if (items.length === 0) return undefined;
  const total = items.reduce((s, i) => s + i.weight, 0);
  let r = random() * total;
  for (const i of items) {
    r -= i.weight;
    if (r < 0) return i;
  }
  return items[items.length - 1];
}

/** Among entries whose score is minimal (within a relative epsilon), one drawn by weight. */
export function lowest<T extends { weight: number }>(items: readonly T[], score: (i: T) => number, random: () => number): T | undefined {
  let best = Infinity;
  const scores = items.map(score);
  for (const s of scores) if (s < best) best = s;
  const tied = items.filter((_, k) => scores[k] <= best + Math.abs(best) * 1e-9);
  return tied.length === 1 ? tied[0] : drawWeighted(tied, random);
}

/** Per-request-shape cursor key: one pool picker serves several models without them sharing a cycle. */
export function cycleKey(ctx: PickContext): string {
  return `${ctx.model ?? ''}\u0000${ctx.kind ?? ''}`;
}
