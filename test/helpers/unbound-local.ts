// Debian's Unbound on 127.0.0.1 and an ephemeral port, answering a static
// local zone of the test's own (no recursion is needed, none leaves the
// machine), its data changed at runtime with unbound-control over a unix
// socket: the resolver a hostname endpoint's name is followed through.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freePort, stopProcess } from './arus.js';
import { TOOLS } from './delegation.js';

/** unbound-checkconf, beside unbound (Debian installs both in /usr/sbin). */
const CHECKCONF = TOOLS.unbound?.includes('/') ? join(dirname(TOOLS.unbound), 'unbound-checkconf') : 'unbound-checkconf';

/** What this file needs that is not installed (Debian: unbound, dnsutils). */
export const missingTools = (['unbound', 'unboundControl', 'dig'] as const).filter((t) => !TOOLS[t]);

export type LocalUnbound = {
  proc: ChildProcess;
  port: number;
  conf: string;
  /** `unbound-control -c conf <args>`; throws with its output when it fails. */
  control(...args: string[]): Promise<string>;
  output(): string;
  stop(): Promise<void>;
};

const run = (cmd: string, args: string[]) =>
  new Promise<{ code: number; out: string }>((resolve) =>
    execFile(cmd, args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) || 1 : 0, out: stdout + stderr })),
  );

function config(dir: string, port: number, zone: string, data: readonly string[]): string {
  return `server:
  verbosity: 1
  interface: 127.0.0.1@${port}
  port: ${port}
  do-ip4: yes
  do-ip6: no
  do-daemonize: no
  access-control: 127.0.0.0/8 allow
  chroot: ""
  username: ""
  directory: "${dir}"
  pidfile: "${join(dir, 'unbound.pid')}"
  use-syslog: no
  logfile: ""
  num-threads: 1
  so-reuseport: no
  local-zone: "${zone}" static
${data.map((d) => `  local-data: "${d}"`).join('\n')}
remote-control:
  control-enable: yes
  control-interface: ${join(dir, 'unbound.ctl')}
  control-use-cert: no
`;
}

/**
 * Starts `unbound -d -c conf` serving `zone` (static: a name without data is
 * NXDOMAIN) with `data` (local-data lines), checked by unbound-checkconf first,
 * and waits until unbound-control reaches it. A port taken between freePort()
 * and unbound's bind is retried on another.
 */
export async function startLocalUnbound(dir: string, zone: string, data: readonly string[]): Promise<LocalUnbound> {
  const conf = join(dir, 'unbound.conf');
  const control = async (...args: string[]) => {
    const r = await run(TOOLS.unboundControl!, ['-c', conf, ...args]);
    if (r.code !== 0) throw new Error(`unbound-control ${args.join(' ')} failed: ${r.out}`);
    return r.out;
  };
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(conf, config(dir, port, zone, data));
    const check = await run(CHECKCONF, [conf]);
    if (check.code !== 0) throw new Error(`unbound-checkconf ${conf} refused the configuration:\n${check.out}`);
    const proc = spawn(TOOLS.unbound!, ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const end = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) break;
      if ((await run(TOOLS.unboundControl!, ['-c', conf, 'status'])).code === 0)
        return { proc, port, conf, control, output: () => out, stop: () => stopProcess(proc) };
      if (Date.now() > end) {
        await stopProcess(proc);
        throw new Error(`unbound not ready in 10 s:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    last = out;
    // Another process took the port meanwhile: try another; anything else is fatal.
    if (!/address already in use/i.test(out)) break;
  }
  throw new Error(`unbound exited:\n${last}`);
}
