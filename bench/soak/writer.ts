// The writer: the admin API written to all through the soak — endpoint drains
// (timed like outages), region weight PATCHes and TTL PATCHes — every answer
// tallied by status.
import { REGION_IDS } from '../../test/helpers/regions.js';
import { sleep } from '../common.js';
import { ADMIN, MAX_DOWN, between, pick, random } from './settings.js';
import { available, closeOutage, unavailable, type Endpoint, type Soak } from './state.js';

/** One admin API call; the parsed body of a 2xx, otherwise undefined (and counted). */
export async function api(soak: Soak, method: string, path: string, body?: unknown): Promise<unknown> {
  const { counts } = soak;
  try {
    const res = await fetch(`${soak.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (res.status >= 500) counts.api.status5xx++;
    else if (res.status >= 400) {
      counts.api.status4xx++;
      console.error(`API ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    } else counts.api.ok++;
    return res.ok ? JSON.parse(text) : undefined;
  } catch (err) {
    counts.api.failed++;
    console.error(`API ${method} ${path}: ${(err as Error).message}`);
    return undefined;
  }
}

async function drain(soak: Soak, e: Endpoint): Promise<void> {
  const path = `/v1/regions/${e.region}/zones/${e.zone}/endpoints/${e.address}`;
  soak.counts.drains++;
  if (!(await api(soak, 'POST', `${path}/drain`, { reason: 'soak' }))) return;
  e.drainedSince = Date.now();
  e.seenDuringOutage = undefined;
  await sleep(between(3000, 10_000));
  closeOutage(soak, e, e.drainedSince, 'drain');
  e.drainedSince = undefined; // up again from the moment the undrain is sent
  await api(soak, 'POST', `${path}/undrain`);
}

/** A write every 1–3 s until 15 s before `end`, then waits for the last drain to be lifted. */
export async function writer(soak: Soak, end: number): Promise<void> {
  const running: Promise<void>[] = [];
  while (Date.now() < end - 15_000) {
    await sleep(between(1000, 3000));
    const r = random();
    if (r < 0.3) {
      if (unavailable(soak) >= MAX_DOWN) continue;
      const e = pick(available(soak));
      e.busy = true;
      running.push(drain(soak, e).finally(() => (e.busy = false)));
    } else if (r < 0.7) {
      const id = pick(REGION_IDS);
      const region = (await api(soak, 'GET', `/v1/regions/${id}`)) as { zones: { endpoints: { weight?: number }[] }[] } | undefined;
      if (!region) continue;
      for (const z of region.zones) for (const ep of z.endpoints) ep.weight = Math.round(between(20, 200));
      await api(soak, 'PATCH', `/v1/regions/${id}`, { zones: region.zones });
      soak.counts.weightWrites++;
    } else {
      await api(soak, 'PATCH', '/v1/services/api', { ttl: Math.round(between(10, 60)) });
      soak.counts.ttlWrites++;
    }
  }
  await Promise.all(running);
}
