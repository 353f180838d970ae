// Starts the real `arus` command as a child process, as an operator would.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'arus.js');

export type Running = { proc: ChildProcess; dnsPort: number; dnsTcpPort: number; api?: string; logs: Record<string, unknown>[]; stop(): Promise<void> };

/** A port free on 127.0.0.1 now (closed again: the caller's child binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'arus-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs `arus <args>` to completion. */
export function arus(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Signals a child and waits for it to exit; SIGKILL after 3 s when a gentler signal is ignored. */
export async function stopProcess(proc: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(sig);
  const t = sig === 'SIGKILL' ? undefined : setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

/**
 * Collects an arus child's JSON log lines into `logs` and resolves with its
 * `ready` line; rejects (and kills it) when it exits first or is not ready in
 * `timeoutMs`, with `describe()` (its command, its stderr) in the message.
 */
export function readyLine(proc: ChildProcess, logs: Record<string, unknown>[], timeoutMs: number, describe: () => string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stopProcess(proc, 'SIGKILL');
      const last = logs.slice(-5).map((l) => JSON.stringify(l)).join('\n');
      reject(new Error(`${describe()}: not ready in ${timeoutMs} ms\n${last}`));
    }, timeoutMs);
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${describe()}: exited with ${code ?? sig}`));
    });
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'ready') {
        clearTimeout(timer);
        resolve(entry);
      }
    });
  });
}

/** Starts a long-running `arus <args>` and waits for its DNS listeners. */
export async function startArus(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; /** What node runs instead of bin/arus.js (the sources: `--import tsx src/cli.ts`). */ entry?: string[] } = {}): Promise<Running> {
  const proc = spawn(process.execPath, [...(opts.entry ?? [BIN]), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ARUS_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const entry = await readyLine(proc, logs, opts.timeoutMs ?? 15_000, () => `arus ${args.join(' ')}\n${stderr}`);
  const udp = (entry.udp ?? []) as { port: number }[];
  const tcp = (entry.tcp ?? []) as { port: number }[];
  return { proc, dnsPort: udp[0]?.port, dnsTcpPort: tcp[0]?.port, api: entry.api as string | undefined, logs, stop: () => stopProcess(proc) };
}

/** Polls `fn` until `ok(value)`; throws with the last value after `timeoutMs`. */
export async function until<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`condition not met in ${timeoutMs} ms; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs `arus <args>` to completion without blocking the event loop (keeps HTTP keep-alive sockets healthy). */
export function arusAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export type Launched = { proc: ChildProcess; logs: Record<string, unknown>[]; stderr(): string; stop(): Promise<void> };

/** Starts a long-running `arus <args>` without waiting for it to be ready: for a role that must not get there (a link it refuses). */
export function launchArus(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Launched {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ARUS_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-8000)));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      // Not a log line.
    }
  });
  return { proc, logs, stderr: () => stderr, stop: () => stopProcess(proc) };
}
