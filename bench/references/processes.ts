// The processes the bench starts — the servers under test, pinned to the
// server's core, and the `arus sim` model servers on the client's — and how
// they are stopped: none outlives the bench, and one that exits on its own
// before the end marks its server failed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BIN, CLIENT_CPU, ROOT, SERVER_CPU } from './settings.js';

export type Server = {
  name: 'arus' | 'arus-w2' | 'arus-w0' | 'arus-lb' | 'gdnsd' | 'pdns' | 'knot';
  label: string;
  port: number;
  proc?: ChildProcess;
  /** The process whose RSS is reported. */
  pid?: number;
  health: boolean;
  /** Timed failing over only, not loaded (its DNS engine is the `arus` row's). */
  failoverOnly?: boolean;
  notes: string[];
  failed?: string;
  stderr: string;
};

let stopping = false;
const started = new Set<ChildProcess>();

export const has = (cmd: string, args: string[] = ['--version']) => !spawnSync(cmd, args).error;

export function version(cmd: string, args: string[], re: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? '';
}

/** Runs `cmd` for server `s` on SERVER_CPU (unless `pin` is false), keeping the tail of its output for the failure message. */
export function spawnServer(s: Server, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; pin?: boolean } = {}): void {
  const pin = opts.pin === false ? [cmd] : ['taskset', '-c', String(SERVER_CPU), cmd];
  const proc = spawn(pin[0], [...pin.slice(1), ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  s.proc = proc;
  s.pid = proc.pid; // taskset execs the server: the same process
  const keep = (d: Buffer) => (s.stderr = (s.stderr + d.toString()).slice(-3000));
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.once('exit', (code, signal) => {
    if (!stopping) s.failed ??= `exited (${code ?? signal}): ${s.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  });
}

/** One `arus sim` on `port`, on the client's core; resolves when it is ready. */
export function startSim(port: number): Promise<ChildProcess> {
  return new Promise<ChildProcess>((resolve, reject) => {
    const proc = spawn('taskset', ['-c', String(CLIENT_CPU), process.execPath, BIN, 'sim', '--listen', `127.0.0.1:${port}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    started.add(proc);
    proc.once('exit', (code) => reject(new Error(`sim on ${port} exited (${code})`)));
    createInterface({ input: proc.stdout }).on('line', (l) => {
      if (l.includes('"msg":"ready"')) resolve(proc);
    });
  });
}

export function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  proc.removeAllListeners('exit');
  return new Promise((r) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    proc.once('exit', () => (clearTimeout(t), r()));
    proc.kill(signal);
  });
}

/** The end of the bench: from now on an exit is expected; every process in `procs` is sent SIGTERM. */
export async function stopAll(procs: (ChildProcess | undefined)[]): Promise<void> {
  stopping = true;
  await Promise.all(procs.filter((p): p is ChildProcess => !!p).map((p) => stopProc(p, 'SIGTERM')));
}

/** Whatever ends this process, no server it started outlives it. */
export function killAllOnExit(): void {
  process.on('exit', () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
}
