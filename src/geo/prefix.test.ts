import { describe, expect, it } from 'vitest';
import { commonPrefixLength, contains, formatIPv4, isMappedIPv4, narrowScope, parseAddress, parseNetwork } from './prefix.js';

const net = (cidr: string) => {
  const n = parseNetwork(cidr);
  if (n === undefined) throw new Error(`bad test network ${cidr}`);
  return n;
};
const addr = (ip: string) => {
  const a = parseAddress(ip);
  if (a === undefined) throw new Error(`bad test address ${ip}`);
  return a;
};

describe('parseAddress', () => {
  it.each([
    ['0.0.0.0', 4, [0]],
    ['36.66.0.1', 4, [0x24420001]],
    ['255.255.255.255', 4, [0xffffffff]],
    ['::', 6, [0, 0, 0, 0]],
    ['::1', 6, [0, 0, 0, 1]],
    ['2001:db8::', 6, [0x20010db8, 0, 0, 0]],
    ['2001:DB8:0:0:0:0:0:1', 6, [0x20010db8, 0, 0, 1]],
    ['1:2:3:4:5:6:7:8', 6, [0x10002, 0x30004, 0x50006, 0x70008]],
    ['1:2:3:4:5:6:7::', 6, [0x10002, 0x30004, 0x50006, 0x70000]],
    ['::ffff:36.66.0.1', 6, [0, 0, 0xffff, 0x24420001]],
    ['::ffff:2442:1', 6, [0, 0, 0xffff, 0x24420001]],
    ['64:ff9b::192.0.2.33', 6, [0x0064ff9b, 0, 0, 0xc0000221]],
    ['fe80::1:2', 6, [0xfe800000, 0, 0, 0x10002]],
  ] as const)('%s', (text, family, words) => {
    expect(parseAddress(text)).toEqual({ family, words });
  });

  it.each([
    '', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.04', '1..2.3', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.x', '1234.1.1.1',
    ':', ':1', '1:', '1::2::3', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1:2:3:4:5:6:7:8', '12345::', 'g::1',
    'fe80::1%eth0', '::ffff:1.2.3', '::ffff:1.2.3.4:5', '1.2.3.4::', 'example.com',
  ])('rejects %j', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });
});

describe('parseNetwork', () => {
  it.each([
    ['10.0.0.0/8', 4, [0x0a000000], 8],
    ['10.1.2.3/8', 4, [0x0a000000], 8], // host bits cleared
    ['0.0.0.0/0', 4, [0], 0],
    ['36.66.0.1/32', 4, [0x24420001], 32],
    ['2001:db8:ffff::/33', 6, [0x20010db8, 0x80000000, 0, 0], 33],
    ['::/0', 6, [0, 0, 0, 0], 0],
    ['::ffff:10.0.0.0/104', 4, [0x0a000000], 8], // mapped: an IPv4 network
    ['::ffff:0:0/96', 4, [0], 0],
    ['::ffff:0:0/95', 6, [0, 0, 0xfffe, 0], 95], // wider than the mapped block: stays IPv6
  ] as const)('%s', (cidr, family, words, length) => {
    expect(parseNetwork(cidr)).toEqual({ address: { family, words }, length });
  });

  it.each(['10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/8/9', '10.0.0.0/0x8', '::/129', 'x/8', '10.0.0.0/ 8'])(
    'rejects %j',
    (cidr) => {
      expect(parseNetwork(cidr)).toBeUndefined();
    },
  );
});

describe('prefix helpers', () => {
  it.each([
    ['10.0.0.0', '10.0.0.0', 32],
    ['10.0.0.0', '11.0.0.0', 7],
    ['10.0.0.0', '10.1.0.0', 15],
    ['36.66.0.1', '36.70.0.0', 13],
    ['0.0.0.0', '128.0.0.0', 0],
    ['2001:db8::', '2001:db8::1', 127],
    ['2001:db8::', '2001:db9::', 31],
    ['2001:db8::', '2001:db8:0:0:8000::', 64],
    ['::', '::', 128],
  ])('commonPrefixLength(%s, %s) = %i', (a, b, n) => {
    expect(commonPrefixLength(addr(a), addr(b))).toBe(n);
    expect(commonPrefixLength(addr(b), addr(a))).toBe(n);
  });

  it('contains, isMappedIPv4, formatIPv4', () => {
    expect(contains(net('10.0.0.0/8'), addr('10.255.0.1'))).toBe(true);
    expect(contains(net('10.0.0.0/8'), addr('11.0.0.0'))).toBe(false);
    expect(contains(net('0.0.0.0/0'), addr('2001:db8::'))).toBe(false); // other family
    expect(isMappedIPv4(addr('::ffff:1.2.3.4'))).toBe(true);
    expect(isMappedIPv4(addr('::1.2.3.4'))).toBe(false);
    expect(isMappedIPv4(addr('1.2.3.4'))).toBe(false);
    expect(formatIPv4(0x24420001)).toBe('36.66.0.1');
    expect(formatIPv4(0xffffffff)).toBe('255.255.255.255');
  });
});

describe('narrowScope', () => {
  // [client, base scope, overrides, expected scope]
  it.each([
    ['36.66.0.1', 11, [], 11],
    ['36.66.0.1', 11, ['10.0.0.0/8', '192.168.0.0/16'], 11], // far away: untouched
    ['36.66.0.1', 11, ['36.70.0.0/16'], 14], // inside the /11: first differing bit 13 → /14
    ['36.66.0.1', 11, ['36.66.0.0/24'], 11], // contains the client: it is the match, not a neighbour
    ['36.66.0.1', 11, ['36.0.0.0/8'], 11], // less specific, contains the client
    ['36.66.0.1', 11, ['36.66.0.128/25', '36.70.0.0/16'], 25], // the nearest neighbour decides
    ['36.66.0.1', 11, ['36.66.0.0/32'], 32], // a neighbour one bit away: host scope
    ['36.66.0.1', 20, ['36.70.0.0/16'], 20], // never widens
    ['10.0.0.1', 8, ['10.0.0.0/8', '10.1.0.0/16'], 16], // nested override beside the client
    ['10.128.0.1', 8, ['10.0.0.0/8', '10.1.0.0/16'], 9],
    ['10.1.2.3', 16, ['10.0.0.0/8', '10.1.0.0/16'], 16],
    ['10.0.0.1', 0, ['128.0.0.0/1'], 1],
    ['10.0.0.1', 0, ['0.0.0.0/0'], 0],
    ['2001:db8::1', 32, ['2001:db8:1::/48'], 48],
    ['2001:db8::1', 32, ['2001:db8:8000::/33', '10.0.0.0/8'], 33], // IPv4 overrides never narrow IPv6
    ['10.0.0.1', 8, ['::/0', '2001:db8::/32'], 8],
    ['2001:db8::', 64, ['2001:db8::1/128'], 128],
  ] as const)('%s base /%i beside %j → /%i', (client, base, nets, expected) => {
    expect(narrowScope(addr(client), base, nets.map(net))).toBe(expected);
  });
});
