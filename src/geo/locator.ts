import type { ClientFacts } from '../steer/types.js';
import { defaultDatabasePath, openGeoIp } from './geoip.js';
import { type NetTarget, compileNets } from './nets.js';
import { bitLength, formatIPv4, ipv4, isMappedIPv4, parseAddress } from './prefix.js';

/** Adds what is known about a client; it never decides the answer. */
export interface Locator {
  /**
   * Facts about the client network `ip`/`prefix` (`ip` already masked to
   * `prefix`; for a resolver's own address, 32 or 128). An IPv4-mapped IPv6
   * address is located as the IPv4 address, and its facts (ip, scope) are IPv4.
   * Throws when `ip` is not an address or `prefix` is out of range.
   */
  locate(ip: string, prefix: number, source: 'ecs' | 'resolver'): ClientFacts;
}

export type LocatorOptions = {
  /** Path to a .mmdb file; the bundled ip-location-db country database when absent. */
  database?: string;
  /** CIDR overrides, checked before the database (longest prefix wins). */
  nets?: Record<string, NetTarget>;
};

/** Opens the database and compiles `nets` once; throws an Error naming the file or the entry at fault. */
export function createLocator(opts: LocatorOptions = {}): Locator {
  const geoip = openGeoIp(opts.database ?? defaultDatabasePath());
  const nets = compileNets(opts.nets ?? {});
  return {
    locate(ip, prefix, source) {
      let addr = parseAddress(ip);
      if (addr === undefined) throw new Error(`locate: "${ip}" is not an IP address`);
      if (!(prefix >= 0 && prefix <= bitLength(addr.family) && Number.isInteger(prefix)))
        throw new Error(`locate: prefix ${prefix} is out of range for ${ip}`);
      let text = ip;
      if (isMappedIPv4(addr)) {
        text = formatIPv4(addr.words[3]);
        addr = ipv4(addr.words[3]);
      }
      const { override, floor } = nets.match(addr);
      if (override !== undefined) {
        const base = override.network.length;
        const scope = floor > base ? floor : base;
        const via = scope > base ? `${override.via}, narrowed to /${scope} by nets` : override.via;
        if (override.region !== undefined) return { ip: text, source, region: override.region, scope, via };
        if (override.location === undefined) return { ip: text, source, country: override.country, scope, via };
        return { ip: text, source, country: override.country, location: override.location, scope, via };
      }
      const { facts, prefix: base, miss } = geoip.lookup(text, addr.family);
      const scope = floor > base ? floor : base;
      const narrowed = scope > base ? `, narrowed to /${scope} by nets` : '';
      if (facts === undefined) return { ip: text, source, scope, via: `unknown (${miss})${narrowed}` };
      const via = `geoip ${facts.label} (/${base})${narrowed}`;
      if (facts.country === undefined) return { ip: text, source, location: facts.location, scope, via };
      if (facts.location === undefined) return { ip: text, source, country: facts.country, scope, via };
      return { ip: text, source, country: facts.country, location: facts.location, scope, via };
    },
  };
}
