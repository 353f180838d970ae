import { describe, expect, it } from 'vitest';
import type { ZoneDoc } from '../config/schema.js';
import { parseAllow } from './allow.js';
import { applyUpdate, RCODE } from './apply.js';
import { CLASS, encodeUpdate, parseMessage, rdataText, T, txtRdata, type EncodedRr } from './message.js';

const APEX = 'gslb.example.com';
const zone = {
  apex: APEX,
  nameservers: [{ name: `ns1.${APEX}`, addresses: ['192.0.2.1'] }],
  services: [{ name: 'api' }],
  records: [{ name: '_acme-challenge', type: 'TXT', ttl: 60, values: ['old'] }],
} as unknown as ZoneDoc;
const allow = [parseAllow('TXT:_acme-challenge.*')];
const ACME = `_acme-challenge.${APEX}`;
const txt = (name: string, text: string, cls: number = CLASS.IN, ttl = 60): EncodedRr => ({ name, type: T.TXT, class: cls, ttl, rdata: txtRdata(text) });
const none = (name: string, type: number, cls: number): EncodedRr => ({ name, type, class: cls, ttl: 0, rdata: Buffer.alloc(0) });

function run(updates: EncodedRr[], prereq: EncodedRr[] = []) {
  const msg = encodeUpdate({ id: 1, zone: APEX, prereq, updates });
  const m = parseMessage(msg);
  return applyUpdate(msg, { zone, prereq: m.prereq, updates: m.updates, allow, regionIds: ['sg'] });
}

describe('the update parser', () => {
  it('reads every section and the RDATA of the stored types as their text', () => {
    const msg = encodeUpdate({ id: 7, zone: APEX, updates: [txt(ACME, 'a'.repeat(300)), { name: `m.${APEX}`, type: T.A, class: CLASS.IN, ttl: 5, rdata: Buffer.from([192, 0, 2, 9]) }] });
    const m = parseMessage(msg);
    expect(m).toMatchObject({ id: 7, opcode: 5, zone: [{ name: APEX, type: T.SOA, class: CLASS.IN }] });
    expect(m.updates.map((u) => rdataText(msg, u))).toEqual(['a'.repeat(300), '192.0.2.9']);
  });
});

describe('applyUpdate (RFC 2136 §3.2, §3.4)', () => {
  it.each([
    ['adds to an RRset', [txt(ACME, 'new')], [], ['old', 'new']],
    ['adds a value once', [txt(ACME, 'old')], [], ['old']],
    ['deletes one RR', [txt(ACME, 'old', CLASS.NONE, 0)], [], undefined],
    ['deletes the RRset', [none(ACME, T.TXT, CLASS.ANY)], [], undefined],
    ['deletes every RRset at the name', [none(ACME, T.ANY, CLASS.ANY)], [], undefined],
    ['replaces within one message', [none(ACME, T.TXT, CLASS.ANY), txt(ACME, 'x')], [], ['x']],
    ['holds when the RRset exists', [txt(ACME, 'x')], [none(ACME, T.TXT, CLASS.ANY)], ['old', 'x']],
    ['holds when the value-dependent RRset matches', [txt(ACME, 'x')], [txt(ACME, 'old', CLASS.IN, 0)], ['old', 'x']],
    ['holds when the name is not in use', [txt(`_acme-challenge.www.${APEX}`, 'w')], [none(`_acme-challenge.www.${APEX}`, T.ANY, CLASS.NONE)], ['old']],
  ])('%s', (_what, updates, prereq, values) => {
    const out = run(updates, prereq);
    expect(out.rcode).toBe(0);
    const records = 'records' in out ? out.records : [];
    expect(records.find((r) => r.name === '_acme-challenge')?.values).toEqual(values);
  });

  it.each([
    ['an RRset that does not exist', [none(ACME, T.CAA, CLASS.ANY)], RCODE.NXRRSET],
    ['a name not in use', [none(`nothing.${APEX}`, T.ANY, CLASS.ANY)], RCODE.NXDOMAIN],
    ['a name in use (not in use asked)', [none(ACME, T.ANY, CLASS.NONE)], RCODE.YXDOMAIN],
    ['an RRset that exists (not asked)', [none(ACME, T.TXT, CLASS.NONE)], RCODE.YXRRSET],
    ['another value set', [txt(ACME, 'other', CLASS.IN, 0)], RCODE.NXRRSET],
    ['the apex has an SOA (exists)', [none(APEX, T.SOA, CLASS.NONE)], RCODE.YXRRSET],
    ['a name outside the zone', [none('example.org', T.ANY, CLASS.ANY)], RCODE.NOTZONE],
  ])('a prerequisite fails: %s', (_what, prereq, rcode) => {
    expect(run([txt(ACME, 'x')], prereq).rcode).toBe(rcode);
  });

  it.each([
    ['a name outside the key', [txt(`www.${APEX}`, 'x')], RCODE.REFUSED],
    ['a type outside the key', [{ name: ACME, type: T.A, class: CLASS.IN, ttl: 60, rdata: Buffer.from([1, 2, 3, 4]) }], RCODE.REFUSED],
    ['the apex NS', [none(APEX, T.NS, CLASS.ANY)], RCODE.REFUSED],
    ['a service name', [none(`api.${APEX}`, T.ANY, CLASS.ANY)], RCODE.REFUSED],
    ['a pinned service name', [txt(`sg.api.${APEX}`, 'x')], RCODE.REFUSED],
    ['outside the zone', [txt('_acme-challenge.example.org', 'x')], RCODE.NOTZONE],
    ['a delete with a TTL', [txt(ACME, 'old', CLASS.NONE, 5)], RCODE.FORMERR],
    ['class CH', [txt(ACME, 'old', 3)], RCODE.FORMERR],
    ['a good update beside a refused one (all or nothing)', [txt(ACME, 'fine'), txt(`www.${APEX}`, 'x')], RCODE.REFUSED],
  ])('refuses %s', (_what, updates, rcode) => {
    expect(run(updates).rcode).toBe(rcode);
  });
});
