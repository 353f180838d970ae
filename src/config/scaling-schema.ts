// The balancer section's scaling settings: per model pool, how many
// instances it may run and when it adds or drains one (`autoscale`), and the
// bounded cache of answers that serves deterministic requests when nothing
// else can (`staleCache`). Both are off unless set.
import { z } from 'zod';

const ms = (max: number) => z.number().int().min(0).max(max);

/** Knobs of the simulated model servers the local provider starts (`arus sim`'s options of the same names). */
const simSchema = z.strictObject({
  warmupMs: ms(3_600_000).optional(),
  ttftMs: ms(600_000).optional(),
  tokensPerSecond: z.number().int().min(1).max(100_000).optional(),
  maxRunning: z.number().int().min(1).max(10_000).optional(),
  kvCacheTokens: z.number().int().min(16).max(100_000_000).optional(),
});

const webhookSchema = z.strictObject({
  kind: z.literal('webhook'),
  /** Where the desired count is POSTed: a cloud API's adapter, Terraform Cloud, a script. https, or http on loopback. */
  url: z.url({ protocol: /^https?$/ }),
  /** The environment variable that holds the bearer token sent with each call (never the token itself: documents are readable). */
  tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name').default('ARUS_SCALE_WEBHOOK_TOKEN'),
  timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  /** Attempts after the first, with exponential back-off (250 ms doubling, jittered); then a `scale.webhook.failed` event. */
  retries: z.number().int().min(0).max(10).default(4),
  /** Allow http:// to a host that is not loopback: the token then crosses the network in clear. */
  insecurePlaintext: z.boolean().default(false),
});

const localSchema = z.strictObject({
  kind: z.literal('local'),
  /** The loopback address the started `arus sim` processes listen on (a free port each). */
  host: z.enum(['127.0.0.1', '::1']).default('127.0.0.1'),
  sim: simSchema.default({}),
});

export const autoscaleSchema = z
  .strictObject({
    /** Instances the pool never goes below or above (configured instances count). */
    min: z.number().int().min(0).max(1000).default(1),
    max: z.number().int().min(1).max(1000).default(8),
    /**
     * The share of each instance's slots (`maxConcurrentPerInstance`) the
     * desired count aims to fill: requests in flight plus queued, averaged
     * over `windowMs`, divided by slots × this (Knative's target utilisation).
     */
    targetUtilization: z.number().min(0.05).max(1).default(0.7),
    /** Expected queueing above this (queued requests × service time ÷ free slots) scales up at once, from the short window. */
    targetQueueMs: ms(600_000).default(1000),
    /** The window demand is averaged over for a decision (Knative's stable window). */
    windowMs: z.number().int().min(1000).max(3_600_000).default(30_000),
    /** The short window a burst is judged on: its demand at twice the instances ready scales up at once (Knative's panic window). */
    panicWindowMs: z.number().int().min(500).max(600_000).default(3000),
    /** No scale-up sooner than this after the last scaling step. */
    scaleUpCooldownMs: ms(3_600_000).default(0),
    /** No scale-down sooner than this after the last scaling step, and only to the highest count wanted over this long (HPA's stabilisation window). */
    scaleDownCooldownMs: ms(3_600_000).default(60_000),
    /** How long a draining instance's requests and streams may run before it is removed anyway. */
    drainTimeoutMs: ms(3_600_000).default(30_000),
    /** How often the pool's demand is sampled and judged. */
    intervalMs: z.number().int().min(50).max(60_000).default(500),
    /** Who adds and removes instances; without one the pool's signals are only exported (for KEDA or an HPA to act on). */
    provider: z.discriminatedUnion('kind', [localSchema, webhookSchema]).optional(),
  })
  .refine((a) => a.min <= a.max, { message: 'min must not exceed max', path: ['min'] })
  .refine((a) => a.panicWindowMs <= a.windowMs, { message: 'panicWindowMs must not exceed windowMs', path: ['panicWindowMs'] });

export const staleCacheSchema = z.strictObject({
  /** How long an answer may be served after it was stored. */
  ttlMs: z.number().int().min(1000).max(7 * 24 * 3_600_000).default(600_000),
  maxEntries: z.number().int().min(1).max(1_000_000).default(1000),
  /** The bodies' total size. */
  maxBytes: z.number().int().min(1024).max(4 * 2 ** 30).default(64 * 2 ** 20),
  /**
   * A request header that makes a request cacheable and names its entry (with
   * the path, model and credential). Without it only requests with
   * `temperature: 0` are cached, keyed by their body.
   */
  keyHeader: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/, 'must be a lowercase header name')
    .optional(),
});

export type AutoscaleDoc = z.infer<typeof autoscaleSchema>;
export type StaleCacheDoc = z.infer<typeof staleCacheSchema>;
export type ScaleProviderDoc = AutoscaleDoc['provider'];
