import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLASS, encodeUpdate, parseMessage, T, txtRdata, wireName } from './message.js';
import { signRequest, signResponse, TSIG_ERROR, tsigOf, verifyRequest } from './tsig.js';

const secret = randomBytes(32);
const now = 1_800_000_000;
const request = (o: { timeSigned?: number; key?: string } = {}) =>
  signRequest(encodeUpdate({ id: 4242, zone: 'gslb.example.com', updates: [{ name: '_acme-challenge.gslb.example.com', type: T.TXT, class: CLASS.IN, ttl: 60, rdata: txtRdata('tok') }] }), {
    keyName: o.key ?? 'certbot',
    secret,
    timeSigned: o.timeSigned ?? now,
  });
const tsig = (msg: Buffer) => tsigOf(msg, parseMessage(msg))!;

describe('TSIG hmac-sha256 (RFC 8945)', () => {
  it('reads the TSIG RR and verifies a request signed over the message and the variables', () => {
    const msg = request();
    const t = tsig(msg);
    expect(t).toMatchObject({ keyName: 'certbot', algorithm: 'hmac-sha256', timeSigned: now, fudge: 300, originalId: 4242, error: 0 });
    expect(t.mac.length).toBe(32);
    expect(verifyRequest(msg, t, secret, now)).toEqual({ ok: true });
  });

  it.each([
    ['an unknown key', (m: Buffer) => m, undefined, now, TSIG_ERROR.BADKEY],
    ['another secret', (m: Buffer) => m, randomBytes(32), now, TSIG_ERROR.BADSIG],
    ['a changed byte in the update', (m: Buffer) => (m[40] ^= 1, m), secret, now, TSIG_ERROR.BADSIG],
    ['a time 301 s off', (m: Buffer) => m, secret, now + 301, TSIG_ERROR.BADTIME],
    ['a time 301 s ahead', (m: Buffer) => m, secret, now - 301, TSIG_ERROR.BADTIME],
  ])('refuses %s', (_what, mutate, key, at, error) => {
    const msg = mutate(Buffer.from(request()));
    expect(verifyRequest(msg, tsig(msg), key, at)).toEqual({ ok: false, error });
  });

  it('accepts a time within the fudge', () => {
    const msg = request();
    expect(verifyRequest(msg, tsig(msg), secret, now + 300).ok).toBe(true);
  });

  it('signs a response over the request MAC, the response and the variables; BADKEY/BADSIG unsigned; BADTIME with our clock', () => {
    const msg = request();
    const t = tsig(msg);
    const head = Buffer.from(msg.subarray(0, 12));
    head[2] |= 0x80;
    head.writeUInt16BE(0, 4);
    head.writeUInt16BE(0, 8);
    head.writeUInt16BE(0, 10);
    const signed = signResponse(head, { request: t, secret, error: 0, nowS: now + 1 });
    const r = tsig(signed);
    expect(r).toMatchObject({ keyName: 'certbot', timeSigned: now + 1, error: 0, originalId: 4242 });
    expect(r.mac.length).toBe(32);
    // RFC 8945 §4.3.1: request MAC size and MAC, the response without TSIG, then the variables.
    const u48 = Buffer.alloc(6);
    u48.writeUIntBE(now + 1, 0, 6);
    const vars = Buffer.concat([wireName('certbot'), Buffer.from([0, 255, 0, 0, 0, 0]), wireName('hmac-sha256'), u48, Buffer.from([1, 44, 0, 0, 0, 0])]);
    const want = createHmac('sha256', secret).update(Buffer.from([0, 32])).update(t.mac).update(head).update(vars).digest();
    expect(r.mac).toEqual(want);
    const unsignedBad = tsig(signResponse(head, { request: t, error: TSIG_ERROR.BADSIG, nowS: now }));
    expect(unsignedBad).toMatchObject({ error: TSIG_ERROR.BADSIG, mac: Buffer.alloc(0) });
    const badTime = tsig(signResponse(head, { request: t, secret, error: TSIG_ERROR.BADTIME, nowS: now + 999 }));
    expect(badTime).toMatchObject({ error: TSIG_ERROR.BADTIME, timeSigned: now });
    expect(badTime.other.readUIntBE(0, 6)).toBe(now + 999);
  });

  it('a message cut short does not read', () => {
    const msg = request();
    expect(() => parseMessage(Buffer.from(msg.subarray(0, msg.length - 3)))).toThrow();
  });
});
