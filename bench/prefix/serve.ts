// The bench's child processes, seen from inside (`bench/prefix.ts --serve
// <kind> <arg>`): the four sims of one workload, an Arus balancer, or the
// SGLang-style proxy. Each prints one JSON line with its port(s) once it
// listens, and stops on SIGTERM.
import { startBalancer } from '../../src/balancer/role.js';
import { balancerSchema } from '../../src/config/schema.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { createSimServer, type SimServerOptions } from '../../src/sim/server.js';
import { FLEET, MODEL } from './settings.js';
import { startCacheAwareProxy } from './sglang.js';

type Stop = () => Promise<void>;
export type SimsArg = { kvCacheTokens: number };
export type ArusArg = { strategy: string; ports: number[]; maxConcurrent: number };

/** Starts the child `kind` (sims, arus, sglang) with `arg`; stops it on SIGTERM, then exits. */
export async function serve(kind: string, arg: unknown): Promise<void> {
  const log = silentLogger();
  let stop: Stop;
  if (kind === 'sims') stop = await serveSims(arg as SimsArg, log);
  else if (kind === 'arus') stop = await serveArus(arg as ArusArg, log);
  else if (kind === 'sglang') stop = await serveSglang(arg as { ports: number[] });
  else throw new Error(`unknown --serve ${kind}`);
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));
}

const print = (info: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(info)}\n`);

/** The fleet (FLEET), each instance with `kvCacheTokens` of KV cache. */
async function serveSims(arg: SimsArg, log: Logger): Promise<Stop> {
  const base: SimServerOptions = { host: '127.0.0.1', port: 0, model: MODEL, tokensPerSecond: FLEET.tokensPerSecond, maxRunning: FLEET.maxRunning, ttftMs: FLEET.ttftMs, kvCacheTokens: arg.kvCacheTokens, log };
  // A sim without a prefill model yet ignores the option.
  const opts = { ...base, prefillTokensPerSecond: FLEET.prefillTokensPerSecond } as SimServerOptions;
  const sims = Array.from({ length: FLEET.instances }, () => createSimServer(opts));
  const ports = [];
  for (const sim of sims) ports.push((await sim.start()).port);
  print({ ports });
  return async () => void (await Promise.all(sims.map((s) => s.stop())));
}

/** An Arus balancer in front of `ports` (`prefix` told the sims' prefill speed); it prints its stats when stopped. */
async function serveArus(arg: ArusArg, log: Logger): Promise<Stop> {
  const doc = {
    listen: '127.0.0.1:0',
    strategy: arg.strategy,
    // A 30 s slow start would still be ramping through a short run; every instance is up before the run.
    slowStartMs: 0,
    maxConcurrentPerInstance: arg.maxConcurrent,
    instances: arg.ports.map((port, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: [MODEL] })),
  };
  const withPrefix = { ...doc, prefix: { prefillTokensPerSecond: FLEET.prefillTokensPerSecond } };
  const parsed = arg.strategy === 'prefix' ? balancerSchema.safeParse(withPrefix) : undefined;
  const b = await startBalancer({ region: 'bench', id: 'bench', doc: parsed?.success ? parsed.data : balancerSchema.parse(doc), log, listen: { address: '127.0.0.1', port: 0 } });
  print({ port: b.port });
  return async () => {
    const s = b.proxy.stats() as unknown as Record<string, unknown>;
    if (process.env.BENCH_VERBOSE) {
      process.stderr.write(`  arus ${arg.strategy} stats: ${JSON.stringify(Object.fromEntries(Object.entries(s).filter(([, v]) => typeof v !== 'object')))}\n`);
      const p = b.pool.prefixStats();
      if (p) process.stderr.write(`  arus ${arg.strategy} prefix decisions: ${JSON.stringify(p.decisions)}, entries ${p.entries}\n`);
    }
    await b.stop();
  };
}

async function serveSglang(arg: { ports: number[] }): Promise<Stop> {
  const p = await startCacheAwareProxy(arg.ports);
  print({ port: p.port });
  return p.stop;
}
