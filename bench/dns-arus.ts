// The `arus` processes the DNS benchmarks start (bench:dns, bench:isolation,
// bench:startup, fuzz): a copy of regions/ with the zone's settings changed,
// applied to a database; `arus <role>` spawned (pinned with taskset when
// asked) and ready; its /metrics read; whether it takes --workers yet.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify } from 'yaml';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The tree whose `arus` runs: this one, or BENCH_ARUS_ROOT (another checkout, e.g. one built apart). */
export const ARUS_ROOT = process.env.BENCH_ARUS_ROOT ?? ROOT;
export const BIN = join(ARUS_ROOT, 'bin', 'arus.js');

/** regions/ copied to `dir`/regions with `zone` merged (one level deep) into zone.yaml; the folder's path. */
export function writeRegions(dir: string, zone: Record<string, unknown> = {}): string {
  const out = join(dir, 'regions');
  cpSync(join(ROOT, 'regions'), out, { recursive: true });
  const file = join(out, 'zone.yaml');
  const doc = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, stringify({ ...doc, ...zone }));
  return out;
}

/** `arus apply --db db regionsDir`; throws with its output when it fails. */
export function applyRegions(db: string, regionsDir: string): void {
  const r = spawnSync(process.execPath, [BIN, 'apply', '--db', db, regionsDir], { cwd: ARUS_ROOT, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  if (r.status !== 0) throw new Error(`arus apply --db ${db} ${regionsDir} failed (${r.status}):\n${r.stdout}${r.stderr}`);
}

const helpCache = new Map<string, boolean>();
/** Whether `arus <command> --help` lists --workers (the worker-thread engine of issue 17). */
export function takesWorkers(command: 'dns' | 'up'): boolean {
  if (process.env.BENCH_WORKERS_FLAG === 'off') return false;
  if (!helpCache.has(command)) {
    const r = spawnSync(process.execPath, [BIN, command, '--help'], { cwd: ARUS_ROOT, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    helpCache.set(command, `${r.stdout}${r.stderr}`.includes('--workers'));
  }
  return helpCache.get(command)!;
}

/** `--workers N` when the command takes it, nothing otherwise (the bench says so once: see workersNote). */
export const workersArgs = (command: 'dns' | 'up', n: number | undefined): string[] => (n !== undefined && takesWorkers(command) ? ['--workers', String(n)] : []);

/** A line for the bench's header when --workers is not there yet. */
export function workersNote(command: 'dns' | 'up'): string | undefined {
  return takesWorkers(command) ? undefined : `NOTE: \`arus ${command} --help\` lists no --workers (or BENCH_WORKERS_FLAG=off): every row runs without it, the responder on the main thread`;
}

export type ArusProcess = {
  proc: ChildProcess;
  pid: number;
  /** The `ready` log line. */
  ready: Record<string, unknown>;
  /** Log lines at error level or above (pino: 50+), kept as they come. */
  errors: Record<string, unknown>[];
  /** The last 4,000 characters of stderr. */
  stderr(): string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM (SIGKILL after 5 s); resolves with the exit code or signal. */
  stop(): Promise<number | string>;
};

/**
 * Spawns `node bin/arus.js ...args` in `root` (this tree unless given), under
 * `taskset -c cpus` when given, and resolves when it logs `ready`; rejects
 * when it exits first or is not ready in `timeoutMs`.
 */
export function startArus(args: string[], opts: { cpus?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; root?: string } = {}): Promise<ArusProcess> {
  const root = opts.root ?? ARUS_ROOT;
  const node = [process.execPath, join(root, 'bin', 'arus.js'), ...args];
  const [cmd, ...rest] = opts.cpus ? ['taskset', '-c', opts.cpus, ...node] : node;
  const proc = spawn(cmd, rest, { cwd: root, env: { ...process.env, ARUS_LOG_LEVEL: 'info', NODE_NO_WARNINGS: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const errors: Record<string, unknown>[] = [];
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const r = await exited;
      clearTimeout(t);
      return r;
    }
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`arus ${args.join(' ')}: not ready in ${opts.timeoutMs ?? 60_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`arus ${args.join(' ')} exited (${code}) before it was ready:\n${stderr}${errors.map((e) => JSON.stringify(e)).join('\n')}`));
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (typeof entry.level === 'number' && entry.level >= 50) errors.push(entry);
      if (entry.msg === 'ready') {
        clearTimeout(timer);
        resolve({ proc, pid: proc.pid!, ready: entry, errors, stderr: () => stderr, exited, stop });
      }
    });
  });
}

/** The sum of every sample of each named metric at `url` (/metrics), e.g. all `arus_dns_rrl_limited_total{action=…}`. */
export async function scrape(url: string, names: string[]): Promise<Record<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const text = await res.text();
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] in out) out[m[1]] += Number(m[2]);
  }
  return out;
}
