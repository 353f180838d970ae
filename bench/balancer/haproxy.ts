// The reference: Debian's HAProxy with `balance roundrobin` or `leastconn`,
// configured in a temporary file, in front of the same instances.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort, sleep } from '../common.js';
import { HAPROXY_THREADS } from './settings.js';

/** `haproxy -f <cfg in dir> -db` on a free port, once it answers /v1/models. */
export function startHaproxy(dir: string, balance: 'roundrobin' | 'leastconn', ports: number[]): Promise<{ port: number; pid?: number; stop(): Promise<void> }> {
  return startConfigured({ dir, name: balance, bin: 'haproxy', backend: [`  balance ${balance}`, ...ports.map((p, i) => `  server s${i} 127.0.0.1:${p}`)] });
}

/**
 * HAProxy on a free loopback port with the benches' global and defaults
 * sections (`nbthread` HAPROXY_THREADS, keep-alive, long timeouts for
 * generations), `defaults` lines added, and the backend `be` given.
 */
export async function startConfigured(o: { dir: string; name: string; bin: string; defaults?: string[]; backend: string[] }): Promise<{ port: number; pid?: number; stop(): Promise<void> }> {
  const port = await freePort();
  const cfg = join(o.dir, `haproxy-${o.name}-${port}.cfg`);
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4000',
      `  nbthread ${HAPROXY_THREADS}`,
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      ...(o.defaults ?? []),
      '  timeout connect 5s',
      '  timeout client 600s',
      '  timeout server 600s',
      '  timeout http-keep-alive 60s',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend be',
      'backend be',
      ...o.backend,
      '',
    ].join('\n'),
  );
  return runHaproxy(o.bin, cfg, port);
}

/** `haproxy -f cfg -db`, once it answers /v1/models on `port`; stopped with SIGTERM (SIGKILL after 3 s). */
export async function runHaproxy(bin: string, cfg: string, port: number): Promise<{ port: number; pid?: number; stop(): Promise<void> }> {
  const proc = spawn(bin, ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  let exited = false;
  proc.once('exit', () => (exited = true));
  for (let i = 0; ; i++) {
    if (exited) throw new Error('haproxy exited before listening');
    try {
      const r = await request(`http://127.0.0.1:${port}/v1/models`, { headersTimeout: 1000 });
      await r.body.dump();
      break;
    } catch {
      if (i > 50) throw new Error('haproxy not listening after 5 s');
      await sleep(100);
    }
  }
  return {
    port,
    pid: proc.pid,
    stop: () =>
      new Promise<void>((done) => {
        if (exited) return done();
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => (clearTimeout(t), done()));
        proc.kill('SIGTERM');
      }),
  };
}
