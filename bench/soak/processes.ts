// The `arus` processes the soak starts (`arus up` and one `arus sim` per
// zone): started until their "ready" line, stopped on purpose, and counted as
// a crash when one exits without being told to.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ADMIN, BIN, ROOT } from './settings.js';

/** A child that may be told its exit is expected (killed, or crashed on purpose). */
type Proc = ChildProcess & { expected?: boolean };

let stopping = false;
const started = new Set<ChildProcess>();

/** Starts `arus <args>`; resolves with the process and its "ready" log line. An exit after that, unless expected, is pushed to `crashes`. */
export function startArus(args: string[], name: string, crashes: string[], onLog?: (entry: Record<string, unknown>) => void): Promise<{ proc: ChildProcess; ready: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ARUS_ADMIN_TOKEN: ADMIN, ARUS_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(proc);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    let ready = false;
    proc.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`arus ${name} exited (${code ?? signal}) before ready\n${stderr}`));
      else if (!stopping && !(proc as Proc).expected) {
        crashes.push(`${name} exited (${code ?? signal}) ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      onLog?.(entry);
      if (!ready && entry.msg === 'ready') {
        ready = true;
        resolve({ proc, ready: entry });
      }
    });
  });
}

/** From now on the exit of `proc` is not a crash. */
export function expectExit(proc: ChildProcess): void {
  (proc as Proc).expected = true;
}

export function kill(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  expectExit(proc);
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    proc.once('exit', () => r());
    proc.kill(signal);
  });
}

/** The end of the soak: no exit counts as a crash any more. */
export function stopCounting(): void {
  stopping = true;
}

/** Whatever ends this process, no server it started outlives it. */
export function killAllOnExit(): void {
  process.on('exit', () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
}
