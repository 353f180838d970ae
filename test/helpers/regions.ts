// A copy of the default regions whose health checks point at test-owned servers.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { createSimServer, type SimServer, type SimServerOptions } from '../../src/sim/server.js';
import { ROOT } from './arus.js';

export const REGION_IDS = ['sg', 'jkt', 'bkk', 'mnl'] as const;

/**
 * Copies regions/ into `dir` without the demo balancers (they listen on fixed
 * ports), pointing each zone's check at `port(zone)` on 127.0.0.1 (or dropping
 * checks when it returns undefined).
 */
export function regionsWithChecks(dir: string, port: (zone: string) => number | undefined): string {
  const out = join(dir, 'regions');
  cpSync(join(ROOT, 'regions'), out, { recursive: true });
  for (const r of REGION_IDS) {
    const f = join(out, `${r}.yaml`);
    let text = readFileSync(f, 'utf8').replace(/^balancer:\n(?:[ #].*\n)*/m, '');
    for (const zone of [`${r}-a`, `${r}-b`]) {
      const block = new RegExp(`(  - id: ${zone}\\n(?:    .*\\n|      .*\\n)*)`);
      text = text.replace(block, (b) => {
        const p = port(zone);
        return p === undefined ? b.replace(/\n\s+check: \{[^}]*\}/g, '') : b.replace(/http:\/\/[^/"]+\//g, `http://127.0.0.1:${p}/`);
      });
    }
    writeFileSync(f, text);
  }
  return out;
}

/** One simulated model server per zone of the default regions (`sg-a`, `sg-b`, …), on free loopback ports. */
export async function startZoneSims(): Promise<Map<string, SimServer>> {
  const sims = new Map<string, SimServer>();
  for (const r of REGION_IDS)
    for (const z of [`${r}-a`, `${r}-b`]) {
      const sim = createSimServer({ log: silentLogger() });
      await sim.start();
      sims.set(z, sim);
    }
  return sims;
}

/** `n` simulated model servers on free loopback ports. */
export async function startSims(n: number, opts: Partial<Omit<SimServerOptions, 'log'>> = {}): Promise<SimServer[]> {
  const sims: SimServer[] = [];
  for (let i = 0; i < n; i++) {
    const sim = createSimServer({ log: silentLogger(), ...opts });
    await sim.start();
    sims.push(sim);
  }
  return sims;
}

/**
 * Copies regions/ into `dir` without health checks, or with `checks` ports (regionsWithChecks), and
 * gives `region` a balancer on 127.0.0.1:0 in front of `sims`
 * (`<region>-1`, `<region>-2`, … serving llama-3-8b), with `settings` as
 * written (`strategy: round-robin`, …).
 */
export function regionsWithBalancer(dir: string, region: string, sims: readonly SimServer[], settings: string[] = [], checks: (zone: string) => number | undefined = () => undefined): string {
  const regions = regionsWithChecks(dir, checks);
  const file = join(regions, `${region}.yaml`);
  const instances = sims.map((s, i) => `    - { id: ${region}-${i + 1}, url: "http://127.0.0.1:${s.port}", models: [llama-3-8b] }`);
  writeFileSync(file, `${readFileSync(file, 'utf8')}${['balancer:', '  listen: "127.0.0.1:0"', ...settings.map((l) => `  ${l}`), '  instances:', ...instances].join('\n')}\n`);
  return regions;
}
