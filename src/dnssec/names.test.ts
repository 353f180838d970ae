import { describe, expect, it } from 'vitest';
import { labelCount, nameText, nameWire } from './names.js';

describe('DNSSEC names', () => {
  it('writes the canonical wire form: lowercased, uncompressed, root-terminated, with or without the final dot', () => {
    const wire = Buffer.from([3, ...Buffer.from('api'), 4, ...Buffer.from('gslb'), 7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0]);
    expect(nameWire('API.Gslb.Example.COM.')).toEqual(wire);
    expect(nameWire('api.gslb.example.com')).toEqual(wire);
    expect(nameWire('.')).toEqual(Buffer.from([0]));
  });

  it('reads \\DDD and \\X escapes: the compact denial\'s \\000 label is one zero octet', () => {
    expect(nameWire('\\000.example.com')).toEqual(Buffer.concat([Buffer.from([1, 0]), nameWire('example.com')]));
    expect(nameWire('a\\.b.example')).toEqual(Buffer.from([3, 0x61, 0x2e, 0x62, 7, ...Buffer.from('example'), 0]));
  });

  it('counts labels as an RRSIG does: not the root, not a leading wildcard', () => {
    expect(labelCount('api.gslb.example.com.')).toBe(4);
    expect(labelCount('*.gslb.example.com')).toBe(3);
    expect(labelCount('.')).toBe(0);
  });

  it('writes a wire name back in presentation form that reads as the same octets', () => {
    for (const name of ['api.gslb.example.com', '\\000.x.gslb.example.com', 'a\\.b.example', 'sp\\032ace.\\255.example', '.']) {
      const wire = nameWire(name);
      expect(nameText(wire)).toBe(name);
      expect(nameWire(nameText(wire.toString('latin1')))).toEqual(wire);
    }
  });

  it('refuses what is not a name', () => {
    expect(() => nameWire('a..b')).toThrow(/empty label/);
    expect(() => nameWire(`${'a'.repeat(64)}.com`)).toThrow(/63 octets/);
    expect(() => nameWire('a\\999.com')).toThrow(/bad escape/);
    expect(() => nameWire(Array.from({ length: 60 }, () => 'abcd').join('.'))).toThrow(/255 octets/);
  });
});
