// The local provider, for the demo and the tests: each instance is an
// `arus sim` process on a free loopback port (the OS picks it), started with
// the pool's model and the configured simulated-GPU knobs. Its stdin is a
// pipe from the balancer (`--exit-with-stdin`), so a balancer that dies,
// even by SIGKILL, leaves no instance behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ScaleProviderDoc } from '../../config/scaling-schema.js';
import type { Logger } from '../../log.js';
import type { Instance, RequestKind } from '../types.js';
import type { ScaleProvider } from './provider.js';

type LocalDoc = Extract<ScaleProviderDoc, { kind: 'local' }>;

/** bin/arus.js, from src/balancer/scale or dist/balancer/scale alike. */
const ARUS = fileURLToPath(new URL('../../../bin/arus.js', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 3000;

const slug = (model: string) => model.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 40) || 'model';

const FLAGS: Record<keyof LocalDoc['sim'], string> = {
  warmupMs: '--warmup-ms',
  ttftMs: '--ttft-ms',
  tokensPerSecond: '--tokens-per-second',
  maxRunning: '--max-running',
  kvCacheTokens: '--kv-cache-tokens',
};

export function createLocalProvider(deps: {
  doc: LocalDoc;
  /** The endpoints an instance of the model serves (those of a configured instance of it). */
  kindsOf: (model: string) => readonly RequestKind[];
  log: Logger;
  /** An instance's process ended without being stopped: the pool must forget it. */
  onLost: (instance: Instance, why: string) => void;
}): ScaleProvider {
  const { doc, log } = deps;
  const running = new Map<string, { proc: ChildProcess; stopping: boolean }>();
  let next = 0;

  function args(model: string): string[] {
    const out = ['sim', '--listen', `${doc.host.includes(':') ? `[${doc.host}]` : doc.host}:0`, '--model', model, '--kinds', deps.kindsOf(model).join(','), '--exit-with-stdin'];
    for (const [k, flag] of Object.entries(FLAGS) as [keyof LocalDoc['sim'], string][]) if (doc.sim[k] !== undefined) out.push(flag, String(doc.sim[k]));
    return out;
  }

  return {
    kind: 'local',
    launch(model) {
      const id = `${slug(model)}-auto-${++next}`;
      const proc = spawn(process.execPath, [ARUS, ...args(model)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ARUS_LOG_LEVEL: 'info' } });
      let stderr = '';
      proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
      // A stdin write to a process that has gone is EPIPE: nothing to do about it here.
      proc.stdin.on('error', () => undefined);
      return new Promise<Instance>((resolve, reject) => {
        const fail = (why: string) => {
          clearTimeout(timer);
          proc.kill('SIGKILL');
          reject(new Error(`arus sim for ${model} did not start: ${why}${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`));
        };
        const timer = setTimeout(() => fail(`not listening within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
        const early = (code: number | null, signal: string | null) => fail(`exited with ${code ?? signal}`);
        proc.once('exit', early);
        proc.once('error', (err) => fail(err.message));
        const lines = createInterface({ input: proc.stdout });
        lines.on('line', (line) => {
          let entry: { msg?: string; servers?: number[] };
          try {
            entry = JSON.parse(line) as typeof entry;
          } catch {
            return;
          }
          if (entry.msg !== 'ready') return;
          clearTimeout(timer);
          proc.off('exit', early);
          const port = entry.servers?.[0];
          if (!port) return fail('it listens on no port (the address is taken or not local)');
          const host = doc.host.includes(':') ? `[${doc.host}]` : doc.host;
          const instance: Instance = { id, url: `http://${host}:${port}`, weight: 100, models: [model], kinds: [...deps.kindsOf(model)] };
          const entryOf = { proc, stopping: false };
          running.set(id, entryOf);
          proc.once('exit', (code, signal) => {
            running.delete(id);
            if (!entryOf.stopping) deps.onLost(instance, `its process (pid ${proc.pid}) exited with ${code ?? signal}`);
          });
          log.debug({ instance: id, url: instance.url, pid: proc.pid }, 'local instance started');
          resolve(instance);
        });
      });
    },
    async stop(instance) {
      const r = running.get(instance.id);
      if (!r) return;
      r.stopping = true;
      await stopProcess(r.proc);
    },
    async close() {
      const all = [...running.values()];
      for (const r of all) r.stopping = true;
      await Promise.all(all.map((r) => stopProcess(r.proc)));
    },
  };
}

function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}
