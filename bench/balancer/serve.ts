// The bench's child processes, seen from inside (`bench/balancer.ts --serve
// <kind> <arg>`): the simulated fleets, the 1-ms backend and an Arus balancer.
// Each prints one JSON line with its port(s) once it listens, and stops on SIGTERM.
import { createServer as createHttpServer } from 'node:http';
import { startBalancer } from '../../src/balancer/role.js';
import { balancerSchema } from '../../src/config/schema.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { createSimServer } from '../../src/sim/server.js';
import { BATCH_MAX, BATCH_WINDOW_MS, EMBED_MODEL, MODEL, SIMS } from './settings.js';

type Stop = () => Promise<void>;

/** Starts the child `kind` (sims, embedsims, tiny, arus) with `arg`; stops it on SIGTERM, then exits. */
export async function serve(kind: string, arg: unknown): Promise<void> {
  const log = silentLogger();
  let stop: Stop;
  if (kind === 'sims') stop = await serveSims(log);
  else if (kind === 'embedsims') stop = await serveEmbedSims(log);
  else if (kind === 'tiny') stop = await serveTiny();
  else if (kind === 'arus') stop = await serveArus(arg as ArusArg, log);
  else throw new Error(`unknown --serve ${kind}`);
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));
}

const printPorts = (ports: number[]) => process.stdout.write(`${JSON.stringify({ ports })}\n`);

/** The mixed runs' fleet: SIMS, one instance each. */
async function serveSims(log: Logger): Promise<Stop> {
  const sims = SIMS.map((s) => createSimServer({ host: '127.0.0.1', port: 0, model: MODEL, tokensPerSecond: s.tokensPerSecond, maxRunning: s.maxRunning, ttftMs: s.ttftMs, log }));
  const ports = [];
  for (const sim of sims) ports.push((await sim.start()).port);
  printPorts(ports);
  return async () => void (await Promise.all(sims.map((s) => s.stop())));
}

/** The batching run's fleet. */
async function serveEmbedSims(log: Logger): Promise<Stop> {
  // Embedding-only instances whose fixed cost per call (20 ms) dominates the cost per input (1 ms).
  const sims = [0, 1].map(() => createSimServer({ host: '127.0.0.1', port: 0, model: EMBED_MODEL, kinds: ['embeddings'], embedCallMs: 20, embedPerInputMs: 1, log }));
  const ports = [];
  for (const sim of sims) ports.push((await sim.start()).port);
  printPorts(ports);
  return async () => void (await Promise.all(sims.map((s) => s.stop())));
}

/** The overhead run's two backends. */
async function serveTiny(): Promise<Stop> {
  // Answers like a model server, 1 ms after the request's body has arrived.
  const body = JSON.stringify({ id: 'x', object: 'chat.completion', model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] });
  const models = JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model' }] });
  const servers = [0, 1].map(() =>
    createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/health') return res.end();
        if (req.url === '/v1/models') return res.writeHead(200, { 'content-type': 'application/json' }).end(models);
        if (req.url === '/metrics') return res.writeHead(200, { 'content-type': 'text/plain' }).end('');
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body), 1);
      });
    }),
  );
  const ports = [];
  for (const s of servers) {
    s.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    ports.push((s.address() as { port: number }).port);
  }
  printPorts(ports);
  return () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    return Promise.resolve();
  };
}

type ArusArg = { strategy: string; ports: number[]; model?: string; batching?: boolean; maxConcurrent?: number };

/** An Arus balancer in front of `ports`; it prints its stats when stopped. */
async function serveArus(arg: ArusArg, log: Logger): Promise<Stop> {
  const { strategy, ports, model = MODEL, batching, maxConcurrent } = arg;
  const doc = balancerSchema.parse({
    listen: '127.0.0.1:0',
    strategy,
    // A 30 s slow start would still be ramping through a short run; every instance is up before the run.
    slowStartMs: 0,
    ...(maxConcurrent ? { maxConcurrentPerInstance: maxConcurrent } : {}),
    ...(batching ? { batching: { embeddings: { windowMs: BATCH_WINDOW_MS, maxBatch: BATCH_MAX } } } : {}),
    instances: ports.map((port, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: [model] })),
  });
  const b = await startBalancer({ region: 'bench', id: 'bench', doc, log, listen: { address: '127.0.0.1', port: 0 } });
  process.stdout.write(`${JSON.stringify({ port: b.port })}\n`);
  return async () => {
    const s = b.proxy.stats() as unknown as Record<string, unknown>;
    process.stderr.write(`  arus stats: ${JSON.stringify(summarizeStats(s))}\n`);
    await b.stop();
  };
}

function summarizeStats(s: Record<string, unknown>) {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'instances' && v && typeof v === 'object') {
      out.instances = Object.fromEntries(
        Object.entries(v as Record<string, Record<string, unknown>>).map(([id, i]) => [id, { requests: i.requests, failures: i.failures }]),
      );
    } else if (typeof v !== 'object') out[k] = v;
  }
  return out;
}
