import type { Logger } from '../log.js';
import { createEngine, ENGINE_DEFAULTS } from './engine.js';
import { faultSchema, type Fault } from './faults.js';
import { createSimHandler } from './handler.js';
import { createListener } from './listener.js';
import { ENDPOINT_KINDS, type EndpointKind } from './openai.js';

export type SimServerOptions = {
  /** Listen address; 127.0.0.1 unless set. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  model?: string;
  warmupMs?: number;
  ttftMs?: number;
  tokensPerSecond?: number;
  /** Sequences generated at once before requests queue. */
  maxRunning?: number;
  /** KV-cache size in tokens (`/ 16` blocks): a running sequence holds prompt + max_tokens of it, cached prompt blocks shared; requests that do not fit queue. */
  kvCacheTokens?: number;
  /** Prompt tokens prefilled per second, one prefill at a time: time to first token is ttftMs + the prefill of the uncached prompt. */
  prefillTokensPerSecond?: number;
  /** Automatic prefix caching; on unless false (then nothing is ever cached and no hit is reported). */
  prefixCache?: boolean;
  /** Decode steps take this many times longer while a prefill runs (2 unless set). */
  prefillDecodeSlowdown?: number;
  /** Sequences decoded at full speed; with more running, each gets tokensPerSecond × knee / running. `maxRunning` unless set (no slowdown). */
  batchKnee?: number;
  /** Endpoints served; the others answer 404. All unless set. */
  kinds?: EndpointKind[];
  /** Fixed cost of one embeddings call; calls are computed one at a time. */
  embedCallMs?: number;
  /** Added cost per input of an embeddings call. */
  embedPerInputMs?: number;
  /** Embedding vector length unless a request asks for `dimensions`. */
  embedDimensions?: number;
  /** Device memory reported in /metrics. */
  gpuMemoryBytes?: number;
  /** Share of device memory taken once the model is loaded (vLLM's --gpu-memory-utilization). */
  gpuMemoryUtilization?: number;
  /** Source of randomness for fault rates; Math.random unless set. */
  random?: () => number;
  /** The warm-up clock; Date.now unless set (tests move it by hand). */
  now?: () => number;
  log: Logger;
};

export interface SimServer {
  /** Listens, and starts loading the model (warm-up). */
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
  /**
   * Injects a fault. `crash` closes the listener and drops every connection
   * (connections are refused, as with a killed process); any other fault
   * after a crash restarts it on the same port, and the model loads again.
   * Resolves once the change has taken effect.
   */
  setFault(f: Fault): Promise<void>;
  readonly fault: Fault;
  readonly port: number | undefined;
}

export const SIM_DEFAULTS = {
  host: '127.0.0.1',
  model: 'llama-3-8b',
  warmupMs: 0,
  ttftMs: 100,
  tokensPerSecond: 50,
  maxRunning: 16,
  ...ENGINE_DEFAULTS,
  embedDimensions: 16,
};

// The process's life: listening, the model loading again at each (re)start,
// and the fault in force (a `crash` closes the listener until another fault
// revives it). Requests are handler.ts's; the socket is listener.ts's.
export function createSimServer(opts: SimServerOptions): SimServer {
  const d = SIM_DEFAULTS;
  const o = {
    host: opts.host ?? d.host,
    model: opts.model ?? d.model,
    warmupMs: opts.warmupMs ?? d.warmupMs,
    ttftMs: opts.ttftMs ?? d.ttftMs,
    tokensPerSecond: opts.tokensPerSecond ?? d.tokensPerSecond,
    maxRunning: opts.maxRunning ?? d.maxRunning,
    kvCacheTokens: opts.kvCacheTokens ?? d.kvCacheTokens,
    prefillTokensPerSecond: opts.prefillTokensPerSecond ?? d.prefillTokensPerSecond,
    prefixCache: opts.prefixCache ?? d.prefixCache,
    prefillDecodeSlowdown: opts.prefillDecodeSlowdown ?? d.prefillDecodeSlowdown,
    batchKnee: opts.batchKnee,
    embedCallMs: opts.embedCallMs ?? d.embedCallMs,
    embedPerInputMs: opts.embedPerInputMs ?? d.embedPerInputMs,
    gpuMemoryBytes: opts.gpuMemoryBytes ?? d.gpuMemoryBytes,
    gpuMemoryUtilization: opts.gpuMemoryUtilization ?? d.gpuMemoryUtilization,
    now: opts.now,
  };
  const engine = createEngine(o);
  let log = opts.log.child({ component: 'sim', model: o.model });
  let fault: Fault = { kind: 'none' };
  let port = opts.port ?? 0;
  let started = false;

  const listener = createListener(
    o.host,
    createSimHandler({
      engine,
      serves: new Set<EndpointKind>(opts.kinds ?? ENDPOINT_KINDS),
      embedDimensions: opts.embedDimensions ?? d.embedDimensions,
      random: opts.random ?? Math.random,
      faults: {
        get fault() {
          return fault;
        },
        setFault,
      },
      failed: (err) => log.error({ err }, 'sim request failed'),
    }),
  );

  async function listen(): Promise<void> {
    port = await listener.listen(port);
    log = opts.log.child({ component: 'sim', model: o.model, port });
    engine.boot();
    log.info({ host: o.host, warmupMs: o.warmupMs }, 'sim listening');
  }

  async function setFault(f: Fault): Promise<void> {
    const next = faultSchema.parse(f);
    const was = fault;
    fault = next;
    log.info({ fault: next }, 'fault set');
    if (next.kind === 'crash') await listener.close();
    else if (was.kind === 'crash' && started && !listener.listening) await listen();
  }

  return {
    async start() {
      started = true;
      if (!listener.listening && fault.kind !== 'crash') await listen();
      return { port };
    },
    async stop() {
      started = false;
      await listener.close();
    },
    setFault,
    get fault() {
      return fault;
    },
    get port() {
      return listener.listening ? port : undefined;
    },
  };
}
