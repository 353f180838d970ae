// Runs Debian's dig against a server and reads its answer.
import { execFile, spawnSync } from 'node:child_process';

export const hasDig = spawnSync('dig', ['-v'], { encoding: 'utf8' }).status === 0;

export type DigResult = {
  raw: string;
  status: string;
  flags: string[];
  answers: { name: string; ttl: number; type: string; data: string }[];
  authority: { name: string; ttl: number; type: string; data: string }[];
  /** The CLIENT-SUBNET option of the reply: "36.66.0.0/24/11". */
  clientSubnet?: string;
};

function section(raw: string, title: string) {
  const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(raw);
  if (!m) return [];
  return m[1]
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => {
      const [name, ttl, , type, ...data] = l.split(/\s+/);
      return { name, ttl: Number(ttl), type, data: data.join(' ') };
    });
}

const digArgs = (server: string, port: number, args: string[]) => [`@${server}`, '-p', String(port), '+time=2', '+tries=1', ...args];

/** `dig @server -p port <args>`; throws when dig cannot run or gets no reply. Blocks the event loop: for a few queries. */
export function dig(server: string, port: number, args: string[]): DigResult {
  const r = spawnSync('dig', digArgs(server, port, args), { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`dig ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return parse(r.stdout);
}

/** `dig` without blocking the event loop (keep-alive sockets and timers go on): for many queries. */
export function digAsync(server: string, port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) =>
    execFile('dig', digArgs(server, port, args), { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`dig ${args.join(' ')} failed: ${err.message} ${stdout}${stderr}`)) : resolve(parse(stdout)),
    ),
  );
}

function parse(raw: string): DigResult {
  const header = /status: (\w+)/.exec(raw);
  const flags = /;; flags: ([^;]*);/.exec(raw);
  const subnet = /; CLIENT-SUBNET: (\S+)/.exec(raw);
  return {
    raw,
    status: header?.[1] ?? 'NONE',
    flags: flags ? flags[1].trim().split(/\s+/) : [],
    answers: section(raw, 'ANSWER'),
    authority: section(raw, 'AUTHORITY'),
    clientSubnet: subnet?.[1],
  };
}
