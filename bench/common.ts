// What the DNS benchmarks share: the client networks, the query mix, dnsperf, free ports, medians.
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ecs, query } from '../src/dns/fixtures.js';
import { seededRandom } from '../src/steer/steer.js';

/** Client networks by country (/16s; each query asks from a random /24 inside one). */
export const SUBNETS: Record<string, string[]> = {
  ID: ['36.66.0.0', '114.124.0.0', '182.253.0.0', '110.136.0.0'],
  SG: ['165.21.0.0', '116.86.0.0', '220.255.0.0'],
  TH: ['171.96.0.0', '184.22.0.0', '223.24.0.0'],
  PH: ['112.198.0.0', '49.144.0.0', '180.190.0.0'],
  MY: ['175.136.0.0', '60.48.0.0'],
  VN: ['113.160.0.0', '14.160.0.0'],
};
export const ALL_SUBNETS = Object.values(SUBNETS).flat();

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of the finite values; NaN when there are none. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export { freePort } from '../test/helpers/arus.js';


/**
 * Writes dnsperf's binary query file (-B) for zone gslb.example.com and returns
 * a description of the mix: `api` A 70 %, AAAA 20 %, pinned `<region>.api` 5 %,
 * apex NS/SOA 3 %, NXDOMAIN 2 %; an ECS /24 from the 17 networks on 90 %, the
 * rest located by the resolver address; random letter case. Seeded: the same
 * file every time.
 */
export function writeQueryFile(path: string, count = 20_000): string {
  const random = seededRandom(2026);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const countries = Object.keys(SUBNETS);
  const mixCase = (name: string) => [...name].map((c) => (random() < 0.5 ? c.toUpperCase() : c)).join('');
  const frames: Buffer[] = [];
  const counts = { ecs: 0, a: 0, aaaa: 0, pinned: 0, apex: 0, nxdomain: 0 };
  for (let i = 0; i < count; i++) {
    const r = random();
    let name = 'api.gslb.example.com';
    let type = 1;
    if (r < 0.7) counts.a++;
    else if (r < 0.9) {
      type = 28;
      counts.aaaa++;
    } else if (r < 0.95) {
      name = `${pick(['sg', 'jkt', 'bkk', 'mnl'])}.api.gslb.example.com`;
      counts.pinned++;
    } else if (r < 0.98) {
      name = 'gslb.example.com';
      type = pick([2, 6]);
      counts.apex++;
    } else {
      name = `x${Math.floor(random() * 1e6)}.gslb.example.com`;
      counts.nxdomain++;
    }
    let options: ReturnType<typeof ecs>[] = [];
    if (random() < 0.9) {
      counts.ecs++;
      const [a, b] = pick(SUBNETS[pick(countries)]).split('.').map(Number);
      options = [ecs(1, 24, [a, b, Math.floor(random() * 256)])];
    }
    const message = query({ id: 0, name: mixCase(name), type, opt: { size: 1232, options } });
    frames.push(Buffer.from([message.length >> 8, message.length & 0xff]), message);
  }
  writeFileSync(path, Buffer.concat(frames));
  const pct = (n: number) => `${Math.round((n / count) * 100)}%`;
  return (
    `${count} queries: api A ${pct(counts.a)}, api AAAA ${pct(counts.aaaa)}, pinned <region>.api A ${pct(counts.pinned)}, ` +
    `apex NS/SOA ${pct(counts.apex)}, NXDOMAIN ${pct(counts.nxdomain)}; ECS /24 on ${pct(counts.ecs)} ` +
    `from ${ALL_SUBNETS.length} /16s in ${countries.join(', ')}; the rest located by the resolver address; random letter case`
  );
}

export type DnsperfResult = { qps: number; completed: number; lost: number; p99ms: number; avgms: number; rcodes: string; p50ms: number; maxms: number };

/**
 * One dnsperf run against 127.0.0.1:`port` with `file` (-B), pinned to `cpu`
 * when given, at a fixed `rate` (dnsperf -Q) when given. dnsperf -v prints one
 * line per answered query with its latency (p50, p99 and max are read from them):
 * written to a file and read after the run, so that the bench takes no CPU meanwhile.
 */
export async function runDnsperf(opts: { port: number; file: string; seconds: number; outstanding: number; clients?: number; cpu?: number | string; rate?: number }): Promise<DnsperfResult> {
  const args = ['-B', '-d', opts.file, '-s', '127.0.0.1', '-p', String(opts.port), '-l', String(opts.seconds), '-q', String(opts.outstanding), '-c', String(opts.clients ?? 1), '-t', '2', '-v'];
  if (opts.rate) args.push('-Q', String(opts.rate));
  const [cmd, ...rest] = opts.cpu === undefined ? ['dnsperf', ...args] : ['taskset', '-c', String(opts.cpu), 'dnsperf', ...args];
  const outPath = `${opts.file}.out`;
  const out = openSync(outPath, 'w');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(cmd, rest, { stdio: ['ignore', out, out] });
    child.once('error', reject);
    child.once('close', resolve);
  });
  closeSync(out);
  const latencies: number[] = [];
  const stats: string[] = [];
  for await (const line of createInterface({ input: createReadStream(outPath) })) {
    // Verbose lines: "> NOERROR <query> <latency seconds>".
    if (line.startsWith('> ')) {
      const latency = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(latency)) latencies.push(latency);
    } else stats.push(line);
  }
  rmSync(outPath, { force: true });
  const text = stats.join('\n');
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  if (code !== 0 || Number.isNaN(num(/Queries per second:\s+([\d.]+)/))) throw new Error(`dnsperf failed (${code}):\n${text.slice(-1500)}`);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN) * 1000;
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    p99ms: at(0.99),
    p50ms: at(0.5),
    maxms: (latencies.at(-1) ?? NaN) * 1000,
    avgms: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    rcodes: /Response codes:\s+(.*)/.exec(text)?.[1] ?? '',
  };
}

/** A process's resident set (MiB), from /proc; NaN once it is gone. */
export function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}
