// Before the load: every server up and following its health checks, then the
// same questions asked of each, and any answer that differs from Arus's printed.
import { sleep, SUBNETS } from '../common.js';
import type { Bench } from './context.js';
import { ZONE } from './settings.js';

/** Up and answering, and every health check passed at least once; a server that does not get there in 120 s is failed. */
export async function waitReady(b: Bench): Promise<void> {
  const { ask } = b.asker;
  // A server that starts "unknown = up" would pass anyway; gdnsd and PowerDNS both start up.
  for (const s of b.live()) {
    const end = Date.now() + 120_000;
    let a = await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 1000);
    while (!s.failed && !a.some((x) => b.jktAddresses.has(x)) && Date.now() < end) {
      await sleep(200);
      a = await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 1000);
    }
    if (!s.failed && !a.some((x) => b.jktAddresses.has(x))) s.failed = `no Jakarta answer for an Indonesian client in 120 s (last: ${a.join(' ')}): ${s.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  }
  await sleep(5000);
}

/** api from three /24s of every /16 of the mix and without ECS, and every pinned name. */
function questions(bench: Bench): { name: string; subnet?: string; label: string }[] {
  const list: { name: string; subnet?: string; label: string }[] = [{ name: `api.${ZONE}`, label: 'api, no ECS (resolver 127.0.0.1)' }];
  for (const [cc, nets] of Object.entries(SUBNETS))
    for (const net of nets) {
      const [a, b] = net.split('.');
      for (const c of [0, 77, 200]) if (bench.countryOf.has(`${a}.${b}.${c}`)) list.push({ name: `api.${ZONE}`, subnet: `${a}.${b}.${c}.0/24`, label: `api from ${a}.${b}.${c}.0/24 (${bench.countryOf.get(`${a}.${b}.${c}`)}, listed under ${cc})` });
    }
  for (const r of bench.regions) list.push({ name: `${r.id}.api.${ZONE}`, label: `${r.id}.api` });
  return list;
}

/** Same questions, same answers? What differs is printed and noted on the server. */
export async function compareAnswers(b: Bench): Promise<void> {
  const { askAgain } = b.asker;
  const asked = questions(b);
  const differ: Record<string, string[]> = {};
  for (const q of asked) {
    const expected = await askAgain(b.arus.port, q.name, q.subnet);
    for (const s of b.live().filter((x) => x !== b.arus)) {
      const got = await askAgain(s.port, q.name, q.subnet);
      if (got !== expected) (differ[s.name] ??= []).push(`${q.label}: ${got} (Arus: ${expected})`);
    }
  }
  console.log(`answers compared: ${asked.length} questions (every /16 of the mix, pinned names, no ECS)`);
  for (const s of b.live().filter((x) => x !== b.arus)) {
    const d = differ[s.name] ?? [];
    console.log(`  ${s.label}: ${d.length === 0 ? 'all the same as Arus' : `${d.length} differ`}`);
    for (const line of d.slice(0, 20)) console.log(`    ${line}`);
    if (d.length) s.notes.push(`${d.length} of ${asked.length} answers differ from Arus's`);
  }
}
