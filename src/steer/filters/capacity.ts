import { formatIPv4, isMappedIPv4, mask, parseAddress } from '../../geo/prefix.js';
import type { RegionCapacity } from '../../snapshot/snapshot.js';
import type { Filter } from '../types.js';

/** The client network a capacity split is decided over: every address in it lands the same way. */
export const BUCKET_PREFIX = { 4: 24, 6: 56 } as const;

/**
 * Spills a share of the first-ranked region's clients to the next region in
 * rank with headroom. When the first region sheds `s` (control's decision,
 * with hysteresis), the clients whose network hashes below `s` move; the
 * others keep the rank order. The hash is over the client's /24 (IPv4) or /56
 * (IPv6), not over its ECS scope: a GeoIP block can be a /11, and one bucket
 * for a whole country could not split it. A growing share only adds clients
 * (the hash is fixed), so resolver caches stay consistent as load moves.
 *
 * A target has headroom when it sheds nothing or has no report (unknown is
 * not full); a region shedding itself never takes others' clients, and when
 * no region has headroom nobody moves. Not consulted while failing open.
 */
export const capacity: Filter = (candidates, ctx) => {
  const first = candidates[0];
  if (!first) {
    ctx.trace.push('capacity: no candidate');
    return candidates;
  }
  if (ctx.failedOpen) {
    ctx.trace.push('capacity: failing open, not consulted');
    return candidates;
  }
  const reports = ctx.snapshot.capacity;
  const report = (id: string): RegionCapacity | undefined => (Object.hasOwn(reports, id) ? reports[id] : undefined);
  const own = report(first.region.id);
  if (!own) {
    ctx.trace.push(`capacity: no report for ${first.region.id} (unknown, not shedding)`);
    return candidates;
  }
  const share = Math.min(1, own.shed);
  if (!(share > 0)) {
    ctx.trace.push(`capacity: ${first.region.id} has headroom (${describe(own)})`);
    return candidates;
  }

  const passedOver: string[] = [];
  const target = candidates.slice(1).find((c) => {
    const r = report(c.region.id);
    if (r === undefined || !(r.shed > 0)) return true;
    passedOver.push(`${c.region.id} shedding ${percent(r.shed)}`);
    return false;
  });
  const head = `capacity: ${first.region.id} shedding ${percent(share)} (${describe(own)})`;
  const skipped = passedOver.length ? `passing over ${passedOver.join(', ')}; ` : '';
  if (!target) {
    ctx.shedding = { region: first.region.id, share };
    ctx.trace.push(`${head}; ${skipped}no other region has headroom: nobody moves, this client stays`);
    return candidates;
  }

  const bucket = clientBucket(ctx.query.client.ip);
  const moves = bucket.hash < share;
  ctx.shedding = { region: first.region.id, share, to: target.region.id, bucketPrefix: share < 1 ? bucket.prefix : undefined };
  const unknown = report(target.region.id) === undefined ? ' (no report: unknown, taken as headroom)' : '';
  const client = `this client (${bucket.network}, hash ${bucket.hash.toFixed(3)})`;
  ctx.trace.push(
    moves
      ? `${head}; ${skipped}${client} → ${target.region.id}${unknown}`
      : `${head}; ${skipped}${client} stays; shed clients go to ${target.region.id}${unknown}`,
  );
  return moves ? [target, ...candidates.filter((c) => c !== target)] : candidates;
};

/**
 * The client's network at bucket granularity and its stable hash in [0, 1).
 * An IPv4-mapped IPv6 address counts as the IPv4 one; an address that does
 * not parse is hashed as text (still stable).
 */
export function clientBucket(ip: string): { network: string; prefix: number; hash: number } {
  const parsed = parseAddress(ip);
  if (!parsed) return { network: ip, prefix: ip.includes(':') ? BUCKET_PREFIX[6] : BUCKET_PREFIX[4], hash: hashWords(textWords(ip), 0) };
  const address = isMappedIPv4(parsed) ? { family: 4 as const, words: [parsed.words[3]] } : parsed;
  const prefix = BUCKET_PREFIX[address.family];
  const net = mask(address, prefix);
  const words = net.words.slice(0, Math.ceil(prefix / 32));
  return { network: `${format(net.family, net.words)}/${prefix}`, prefix, hash: hashWords(words, address.family) };
}

/** Murmur3-style mixing of 32-bit words, finished with fmix32: uniform over sequential /24s. */
function hashWords(words: readonly number[], seed: number): number {
  let h = (0x9e3779b9 ^ seed) >>> 0;
  for (const w of words) {
    let k = Math.imul(w, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= words.length * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

function textWords(text: string): number[] {
  return Array.from(text, (ch) => ch.codePointAt(0)!);
}

function format(family: 4 | 6, words: readonly number[]): string {
  if (family === 4) return formatIPv4(words[0]);
  // Only the first 64 bits can be set at /56.
  const groups = [words[0] >>> 16, words[0] & 0xffff, words[1] >>> 16, words[1] & 0xffff].map((g) => g.toString(16));
  return `${groups.join(':')}::`;
}

function describe(c: RegionCapacity): string {
  return [c.saturation !== undefined ? `saturation ${c.saturation.toFixed(2)}` : '', c.reason].filter(Boolean).join(', ');
}

function percent(share: number): string {
  return `${Math.round(Math.min(1, share) * 100)}%`;
}
