import { describe, expect, it } from 'vitest';
import { type NetTarget, compileNets } from './nets.js';
import { type Address, type Network, contains, formatIPv4, narrowScope, parseAddress, parseNetwork } from './prefix.js';

const addr = (ip: string): Address => parseAddress(ip)!;

const nets: Record<string, NetTarget> = {
  '10.0.0.0/8': { region: 'sg' },
  '10.1.0.0/16': { region: 'jkt' },
  '10.1.2.0/24': { country: 'th' },
  '100.64.0.0/10': { country: 'ID' },
  '2001:db8::/32': { region: 'mnl' },
  '2001:db8:1::/48': { country: 'PH' },
  '::ffff:192.168.0.0/112': { region: 'bkk' }, // written mapped: an IPv4 override
};

describe('compileNets', () => {
  const table = compileNets(nets);

  // [address, matched key or undefined, floor]
  it.each([
    ['10.0.0.1', '10.0.0.0/8', 16],
    ['10.200.0.1', '10.0.0.0/8', 9],
    ['10.1.0.1', '10.1.0.0/16', 23],
    ['10.1.3.1', '10.1.0.0/16', 24],
    ['10.1.2.3', '10.1.2.0/24', 2],
    ['100.100.0.1', '100.64.0.0/10', 2],
    ['192.168.7.7', '::ffff:192.168.0.0/112', 1],
    ['11.0.0.1', undefined, 8],
    ['36.66.0.1', undefined, 3],
    ['2001:db8::1', '2001:db8::/32', 48],
    ['2001:db8:1::1', '2001:db8:1::/48', 0],
    ['2001:db9::1', undefined, 32],
    ['2400:cb00::1', undefined, 6],
  ])('%s → %s (floor %s)', (ip, key, floor) => {
    const m = table.match(addr(ip));
    expect(m.override?.cidr).toBe(key);
    expect(m.floor).toEqual(floor);
  });

  it('compiles targets and trace text once', () => {
    expect(table.size).toBe(7);
    expect(table.match(addr('10.1.2.3')).override).toMatchObject({
      country: 'TH',
      location: { lat: 15, lon: 100 },
      via: 'nets 10.1.2.0/24 → country TH',
    });
    expect(table.match(addr('10.0.0.1')).override).toMatchObject({ region: 'sg', via: 'nets 10.0.0.0/8 → region sg' });
    expect(table.match(addr('10.0.0.1')).override).not.toHaveProperty('country');
  });

  it('an empty table matches nothing and never narrows', () => {
    const empty = compileNets({});
    expect(empty.match(addr('10.0.0.1'))).toEqual({ override: undefined, floor: 0 });
    expect(empty.match(addr('::1'))).toEqual({ override: undefined, floor: 0 });
  });

  it('matches /0 and /32 overrides', () => {
    const t = compileNets({ '0.0.0.0/0': { region: 'sg' }, '36.66.0.1/32': { region: 'jkt' } });
    expect(t.match(addr('36.66.0.1'))).toMatchObject({ override: { cidr: '36.66.0.1/32' }, floor: 0 });
    expect(t.match(addr('36.66.0.0'))).toMatchObject({ override: { cidr: '0.0.0.0/0' }, floor: 32 });
    expect(t.match(addr('::1')).override).toBeUndefined();
  });

  it.each([
    [{ '10.0.0.0/33': { region: 'sg' } }, /"10\.0\.0\.0\/33" is not a network/],
    [{ 'ten/8': { region: 'sg' } }, /"ten\/8" is not a network/],
    [{ '10.0.0.0/8': {} as NetTarget }, /"10\.0\.0\.0\/8" needs \{ region/],
    [{ '10.0.0.0/8': { country: 'IDN' } }, /needs \{ region/],
    [{ '10.0.0.0/8': { region: 'sg' }, '10.9.9.9/8': { region: 'jkt' } }, /"10\.0\.0\.0\/8" and "10\.9\.9\.9\/8" are the same network/],
  ])('rejects %j', (bad, message) => {
    expect(() => compileNets(bad)).toThrow(message);
  });

  it('accepts the same network twice with the same target', () => {
    expect(compileNets({ '10.0.0.0/8': { region: 'sg' }, '10.0.0.1/8': { region: 'sg' } }).size).toBe(1);
  });

  it('agrees with a linear scan and narrowScope on random overrides and addresses', () => {
    let seed = 0x2545f491;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    // Addresses and overrides drawn from a small space so they nest and collide.
    const randomIPv4 = () => ((0x0a000000 | (Math.floor(rand() * 64) << 18) | Math.floor(rand() * 4096)) >>> 0);
    for (let round = 0; round < 20; round++) {
      const cfg: Record<string, NetTarget> = {};
      for (let i = 0; i < 30; i++) cfg[`${formatIPv4(randomIPv4())}/${8 + Math.floor(rand() * 25)}`] = { region: `r${i}` };
      const list: { key: string; network: Network }[] = [];
      const seen = new Set<string>();
      for (const key of Object.keys(cfg)) {
        const network = parseNetwork(key)!;
        const id = `${network.address.words[0]}/${network.length}`;
        if (seen.has(id)) {
          delete cfg[key];
          continue;
        }
        seen.add(id);
        list.push({ key, network });
      }
      const table = compileNets(cfg);
      for (let j = 0; j < 200; j++) {
        const a = addr(formatIPv4(randomIPv4()));
        const best = list.filter((n) => contains(n.network, a)).sort((x, y) => y.network.length - x.network.length)[0];
        const m = table.match(a);
        expect(m.override?.cidr).toBe(best?.key);
        const base = best?.network.length ?? 0;
        expect(Math.max(base, m.floor)).toBe(narrowScope(a, base, list.map((n) => n.network)));
      }
    }
  });
});
