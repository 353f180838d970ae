// The bench's own child processes, seen from the parent: bench/balancer.ts run
// again with `--serve <kind> <arg>` (serve.ts), so that the load generator here
// does not share their event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../balancer.ts', import.meta.url));

export type Child = { child: ChildProcess; info: Record<string, unknown>; stop(): Promise<void> };

/** Runs the bench with `--serve <kind> <arg>`; resolves with the first JSON line it prints. */
export function child(kind: string, arg: unknown): Promise<Child> {
  const prof = kind === 'arus' && process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  if (kind === 'arus' && process.env.BENCH_ARUS_NODE_FLAGS) prof.push(...process.env.BENCH_ARUS_NODE_FLAGS.split(' ').filter(Boolean));
  return serveChild(entry, kind, arg, prof);
}

/** Runs `entry` with `--serve <kind> <arg>` (node `flags` first); resolves with the first JSON line it prints. */
export function serveChild(script: string, kind: string, arg: unknown, flags: string[] = []): Promise<Child> {
  const proc = spawn(process.execPath, [...flags, '--import', 'tsx', script, '--serve', kind, JSON.stringify(arg ?? null)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout });
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${kind} exited (${code}) before listening`)));
    lines.once('line', (line) => {
      proc.removeAllListeners('exit');
      resolve({
        child: proc,
        info: JSON.parse(line) as Record<string, unknown>,
        stop: () =>
          new Promise<void>((done) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return done();
            const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
            proc.once('exit', () => (clearTimeout(t), done()));
            proc.kill('SIGTERM');
          }),
      });
    });
  });
}
