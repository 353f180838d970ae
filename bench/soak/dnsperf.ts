// The steady load: one dnsperf run at a fixed rate (-Q) for the whole soak,
// its counts read from its report.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { QPS } from './settings.js';

export type Perf = { sent: number; completed: number; lost: number; qps: number; rcodes: Record<string, number>; text: string };

export async function dnsperf(port: number, file: string, seconds: number): Promise<Perf> {
  const outPath = `${file}.out`;
  const out = openSync(outPath, 'w');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('dnsperf', ['-B', '-d', file, '-s', '127.0.0.1', '-p', String(port), '-l', String(seconds), '-Q', String(QPS), '-q', '200', '-t', '2'], { stdio: ['ignore', out, out] });
    child.once('error', reject);
    child.once('close', resolve);
  });
  closeSync(out);
  const text = readFileSync(outPath, 'utf8');
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  if (code !== 0) throw new Error(`dnsperf failed (${code}):\n${text}`);
  const rcodes: Record<string, number> = {};
  for (const m of (/Response codes:\s+(.*)/.exec(text)?.[1] ?? '').matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]] = Number(m[2]);
  return { sent: num(/Queries sent:\s+(\d+)/), completed: num(/Queries completed:\s+(\d+)/), lost: num(/Queries lost:\s+(\d+)/), qps: num(/Queries per second:\s+([\d.]+)/), rcodes, text };
}
