// What a balancer tells control of its pools' scaling, inside its capacity
// report: each pool's figures, and the scaling steps since the last report
// that reached control (for the history). No imports: control reads it too.

export const SCALE_EVENT_KINDS = [
  'scale.up',
  'scale.down',
  'scale.instance.warming',
  'scale.instance.ready',
  'scale.instance.draining',
  'scale.instance.removed',
  'scale.instance.lost',
  'scale.provider.failed',
  'scale.webhook.failed',
  'scale.webhook.delivered',
] as const;
export type ScaleEventKind = (typeof SCALE_EVENT_KINDS)[number];

/** A scaling step, for the history (`at`: the balancer's clock, ms since the epoch). */
export type ScaleEvent = { kind: ScaleEventKind; subject: string; oldState: string; newState: string; reason: string; at: number };

/**
 * One model pool's figures, as /metrics, GET /v1/capacity and the webhook
 * give them: `desired`, the count that keeps expected queueing under the
 * target; `current`, every instance that exists (warming and draining ones
 * included: each holds a GPU); `ready`, those taking requests.
 */
export type PoolFigures = { model: string; desired: number; current: number; warming: number; draining: number; ready: number; scaling: 'off' | 'local' | 'webhook' };
