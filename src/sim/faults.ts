import { z } from 'zod';

/**
 * An injected failure. `rate` is the share of requests it hits (1 unless
 * set); `delayMs` is how long a `slow` request waits before it is served.
 * `crash` is all or nothing: the process is gone, so `rate` does not apply.
 * `oom` is GPU memory exhaustion: the metrics report the device full and
 * hit requests fail with 503, as from a vLLM engine that died of CUDA OOM.
 */
export const faultSchema = z.strictObject({
  kind: z.enum(['none', 'error', 'hang', 'slow', 'crash', 'oom']),
  rate: z.number().min(0).max(1).optional(),
  delayMs: z.number().int().min(0).max(600_000).optional(),
});

export type Fault = z.infer<typeof faultSchema>;

/** What one request gets under a fault. */
export type FaultAction = { kind: 'pass' } | { kind: 'error' } | { kind: 'hang' } | { kind: 'delay'; ms: number } | { kind: 'oom' };

export const SLOW_DELAY_MS = 2000;

export function faultAction(fault: Fault, random: () => number): FaultAction {
  if (fault.kind === 'none' || fault.kind === 'crash') return { kind: 'pass' };
  if (random() >= (fault.rate ?? 1)) return { kind: 'pass' };
  if (fault.kind === 'slow') return { kind: 'delay', ms: fault.delayMs ?? SLOW_DELAY_MS };
  return { kind: fault.kind };
}
