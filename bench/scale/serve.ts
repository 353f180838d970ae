// The scale bench's child processes, seen from inside (`bench/scale.ts --serve
// <kind> <arg>`): a setup's configured simulated GPUs, and a region's
// balancer in front of them. Each prints one JSON line once it listens, and
// stops on SIGTERM (or SIGINT: Ctrl-C reaches the whole process group).
import pino from 'pino';
import { startBalancer } from '../../src/balancer/role.js';
import { balancerSchema } from '../../src/config/schema.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { createSimServer } from '../../src/sim/server.js';
import { autoscaleSection, balancerSection, MODEL, SIM } from './settings.js';

type Stop = () => Promise<void>;
export type SimsArg = { n: number };
export type ArusArg = { ports: number[]; autoscale: boolean; logFile?: string };

export async function serve(kind: string, arg: unknown): Promise<void> {
  let stop: Stop;
  if (kind === 'sims') stop = await serveSims(arg as SimsArg);
  else if (kind === 'arus') stop = await serveBalancer(arg as ArusArg);
  else throw new Error(`unknown --serve ${kind}`);
  let stopping = false;
  const end = () => {
    if (stopping) return;
    stopping = true;
    void stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${kind}: stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', end);
  process.on('SIGINT', end);
}

/** `n` simulated GPUs, ready at once (the static fleets and Arus's configured instance). */
async function serveSims({ n }: SimsArg): Promise<Stop> {
  const log = silentLogger();
  const sims = Array.from({ length: n }, () => createSimServer({ host: '127.0.0.1', port: 0, model: MODEL, ...SIM, log }));
  const ports = [];
  for (const sim of sims) ports.push((await sim.start()).port);
  process.stdout.write(`${JSON.stringify({ ports })}\n`);
  return async () => void (await Promise.all(sims.map((s) => s.stop())));
}

/** A region's balancer over `ports`, with the local scaler when `autoscale`; its log (scaling events) to `logFile`. */
async function serveBalancer({ ports, autoscale, logFile }: ArusArg): Promise<Stop> {
  const log: Logger = logFile ? pino({ level: 'info', base: { app: 'arus' } }, pino.destination({ dest: logFile, sync: true })) : silentLogger();
  const doc = balancerSchema.parse({ ...balancerSection(ports), ...(autoscale ? { autoscale: autoscaleSection() } : {}) });
  const b = await startBalancer({ region: 'bench', id: 'bench', doc, log, listen: { address: '127.0.0.1', port: 0 } });
  process.stdout.write(`${JSON.stringify({ port: b.port })}\n`);
  return async () => {
    const s = b.proxy.stats();
    process.stderr.write(`  balancer${autoscale ? ' (autoscale)' : ''} over ${ports.length} configured: requests ${s.requests}, overloaded ${s.overloaded}, retries ${s.retries}\n`);
    // Stops the scaler too, and with it the `arus sim` processes it started.
    await b.stop();
  };
}
