import { countryLocation } from './countries.js';
import { type Address, type Network, bitAt, bitLength, parseNetwork } from './prefix.js';

export type NetTarget = { readonly region: string } | { readonly country: string };

/** One `nets` entry, compiled: everything a match needs is computed here, not per query. */
export type NetOverride = {
  /** The key as written in the configuration. */
  readonly cidr: string;
  readonly network: Network;
  readonly region?: string;
  readonly country?: string;
  readonly location?: { readonly lat: number; readonly lon: number };
  /** e.g. `nets 10.0.0.0/8 → region sg` */
  readonly via: string;
};

export type NetMatch = {
  /** The longest-prefix override containing the address, if any. */
  readonly override: NetOverride | undefined;
  /**
   * Smallest prefix length at which the block around the address reaches no
   * override that does not contain the address (0 when none exists).
   */
  readonly floor: number;
};

export interface NetTable {
  match(a: Address): NetMatch;
  readonly size: number;
}

type Node = { zero?: Node; one?: Node; override?: NetOverride };

/**
 * Compiles `nets` into one binary trie per family: a lookup walks the
 * address's bits once, at most as deep as the deepest override on its path,
 * and finds both the longest match and the scope floor (every side branch
 * leaving the path holds overrides that differ from the address at that bit).
 */
export function compileNets(nets: Readonly<Record<string, NetTarget>>): NetTable {
  const roots: Record<4 | 6, Node> = { 4: {}, 6: {} };
  let size = 0;
  for (const [cidr, target] of Object.entries(nets)) {
    const override = compileOverride(cidr, target);
    const { address, length } = override.network;
    let node = roots[address.family];
    for (let i = 0; i < length; i++) {
      if (bitAt(address, i)) node = node.one ??= {};
      else node = node.zero ??= {};
    }
    const existing = node.override;
    if (existing !== undefined) {
      if (existing.region !== override.region || existing.country !== override.country)
        throw new Error(`nets: "${existing.cidr}" and "${cidr}" are the same network with different targets`);
      continue;
    }
    node.override = override;
    size++;
  }
  return {
    size,
    match(a) {
      let node: Node | undefined = roots[a.family];
      let override: NetOverride | undefined;
      let floor = 0;
      const bits = bitLength(a.family);
      for (let depth = 0; node !== undefined; depth++) {
        if (node.override !== undefined) override = node.override;
        if (depth === bits) break;
        const one = bitAt(a, depth) === 1;
        if ((one ? node.zero : node.one) !== undefined) floor = depth + 1;
        node = one ? node.one : node.zero;
      }
      return { override, floor };
    },
  };
}

function compileOverride(cidr: string, target: NetTarget): NetOverride {
  const network = parseNetwork(cidr);
  if (network === undefined) throw new Error(`nets: "${cidr}" is not a network in CIDR notation such as 10.0.0.0/8`);
  if ('region' in target && typeof target.region === 'string' && target.region !== '')
    return { cidr, network, region: target.region, via: `nets ${cidr} → region ${target.region}` };
  if ('country' in target && typeof target.country === 'string' && /^[A-Za-z]{2}$/.test(target.country)) {
    const country = target.country.toUpperCase();
    const location = countryLocation(country);
    return { cidr, network, country, ...(location && { location }), via: `nets ${cidr} → country ${country}` };
  }
  throw new Error(`nets: "${cidr}" needs { region: <id> } or { country: <ISO code> }`);
}
