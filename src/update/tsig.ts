// TSIG (RFC 8945) with HMAC-SHA256: the MAC of a request checked over the
// message without its TSIG RR (ARCOUNT one less, the original ID) followed by
// the TSIG variables (§4.3.3), the time within the fudge, and responses
// signed over the request's MAC, the response and the variables (§5.3).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLASS, readName, T, wireName, type Rr, type UpdateMessage } from './message.js';

export const HMAC_SHA256 = 'hmac-sha256';
/** Seconds a signature's time may differ from ours (RFC 8945 §10 recommends 300). */
export const FUDGE_S = 300;
export const TSIG_ERROR = { BADSIG: 16, BADKEY: 17, BADTIME: 18 } as const;

/** The fields of a TSIG RR's RDATA. */
export type TsigRecord = {
  readonly keyName: string;
  readonly algorithm: string;
  /** Seconds since the epoch (48 bits). */
  readonly timeSigned: number;
  readonly fudge: number;
  readonly mac: Buffer;
  readonly originalId: number;
  readonly error: number;
  readonly other: Buffer;
  /** Where the TSIG RR starts in the message. */
  readonly start: number;
};

/** The message's TSIG, which must be its last RR (RFC 8945 §5.1); undefined when there is none, FORMERR-worthy errors thrown. */
export function tsigOf(msg: Buffer, m: UpdateMessage): TsigRecord | undefined {
  const i = m.additional.findIndex((r) => r.type === T.TSIG);
  if (i < 0) return undefined;
  if (i !== m.additional.length - 1) throw new Error('TSIG is not the last record');
  return readTsig(msg, m.additional[i]);
}

function readTsig(msg: Buffer, rr: Rr): TsigRecord {
  if (rr.class !== CLASS.ANY || rr.ttl !== 0) throw new Error('TSIG must have class ANY and TTL 0');
  const alg = readName(msg, rr.rdataAt);
  const end = rr.rdataAt + rr.rdata.length;
  let p = alg.end;
  if (p + 10 > end) throw new Error('TSIG RDATA too short');
  const timeSigned = msg.readUIntBE(p, 6);
  const fudge = msg.readUInt16BE(p + 6);
  const macSize = msg.readUInt16BE(p + 8);
  p += 10;
  if (p + macSize + 6 > end) throw new Error('TSIG MAC runs past its RDATA');
  const mac = msg.subarray(p, p + macSize);
  p += macSize;
  const originalId = msg.readUInt16BE(p);
  const error = msg.readUInt16BE(p + 2);
  const otherLen = msg.readUInt16BE(p + 4);
  p += 6;
  if (p + otherLen !== end) throw new Error('TSIG other data does not end its RDATA');
  return { keyName: rr.name, algorithm: alg.name, timeSigned, fudge, mac, originalId, error, other: msg.subarray(p, end), start: rr.start };
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u48 = (n: number) => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

/** The TSIG variables (§4.3.3): key name, class, TTL, algorithm, time signed, fudge, error, other data. */
function variables(t: { keyName: string; algorithm: string; timeSigned: number; fudge: number; error: number; other: Buffer }): Buffer {
  return Buffer.concat([wireName(t.keyName), u16(CLASS.ANY), Buffer.alloc(4), wireName(t.algorithm), u48(t.timeSigned), u16(t.fudge), u16(t.error), u16(t.other.length), t.other]);
}

const hmac = (secret: Buffer, parts: Buffer[]) => {
  const h = createHmac('sha256', secret);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** The request as it was before its TSIG was added: without the RR, ARCOUNT one less, the original ID. */
function unsigned(msg: Buffer, t: TsigRecord): Buffer {
  const head = Buffer.from(msg.subarray(0, t.start));
  head.writeUInt16BE(t.originalId, 0);
  head.writeUInt16BE(head.readUInt16BE(10) - 1, 10);
  return head;
}

export type Verdict =
  | { ok: true }
  | { ok: false; error: (typeof TSIG_ERROR)[keyof typeof TSIG_ERROR] };

/**
 * Checks a request's TSIG with the key's secret (undefined: an unknown key → BADKEY).
 * The MAC first, then the time (§5.2): a forged message learns nothing of our clock.
 */
export function verifyRequest(msg: Buffer, t: TsigRecord, secret: Buffer | undefined, nowS: number): Verdict {
  if (!secret || t.algorithm !== HMAC_SHA256) return { ok: false, error: TSIG_ERROR.BADKEY };
  const want = hmac(secret, [unsigned(msg, t), variables(t)]);
  // A truncated MAC (RFC 8945 §5.2.2.1) is not accepted: every client in scope sends the whole one.
  if (t.mac.length !== want.length || !timingSafeEqual(t.mac, want)) return { ok: false, error: TSIG_ERROR.BADSIG };
  if (Math.abs(nowS - t.timeSigned) > Math.min(t.fudge, FUDGE_S)) return { ok: false, error: TSIG_ERROR.BADTIME };
  return { ok: true };
}

/** What a request's TSIG says of it, as the update and query paths both need it. */
export type Authentication<K> =
  | { kind: 'ok'; t: TsigRecord; key: K }
  /** A TSIG RR that does not parse. */
  | { kind: 'formerr' }
  | { kind: 'unsigned' }
  /** NOTAUTH with `error`, the answer signed with `secret` only for BADTIME (RFC 8945 §5.2.3). */
  | { kind: 'refused'; t: TsigRecord; outcome: 'badkey' | 'badsig' | 'badtime'; error: (typeof TSIG_ERROR)[keyof typeof TSIG_ERROR]; secret?: Buffer };

/** The request's TSIG checked against the key `get` finds by its name. */
export function authenticate<K extends { secret: Buffer }>(msg: Buffer, m: UpdateMessage, get: (name: string) => K | undefined, nowS: number): Authentication<K> {
  let t: TsigRecord | undefined;
  try {
    t = tsigOf(msg, m);
  } catch {
    return { kind: 'formerr' };
  }
  if (!t) return { kind: 'unsigned' };
  const key = t.algorithm === HMAC_SHA256 ? get(t.keyName) : undefined;
  const verdict = verifyRequest(msg, t, key?.secret, nowS);
  if (verdict.ok) return { kind: 'ok', t, key: key! };
  const outcome = verdict.error === TSIG_ERROR.BADKEY ? 'badkey' : verdict.error === TSIG_ERROR.BADSIG ? 'badsig' : 'badtime';
  return { kind: 'refused', t, outcome, error: verdict.error, ...(verdict.error === TSIG_ERROR.BADTIME ? { secret: key!.secret } : {}) };
}

/**
 * Appends a TSIG RR to a response (ARCOUNT one more). With `secret`, signed over the
 * request's MAC (§5.3); without (BADKEY, BADSIG), an empty MAC (§5.3.2).
 */
export function signResponse(
  response: Buffer,
  o: { request: TsigRecord; secret?: Buffer; error: number; nowS: number },
): Buffer {
  const { request: r } = o;
  // BADTIME: the request's time signed, our clock in Other Data (§5.2.3).
  const timeSigned = o.error === TSIG_ERROR.BADTIME ? r.timeSigned : o.nowS;
  const other = o.error === TSIG_ERROR.BADTIME ? u48(o.nowS) : Buffer.alloc(0);
  const fields = { keyName: r.keyName, algorithm: HMAC_SHA256, timeSigned, fudge: FUDGE_S, error: o.error, other };
  const mac = o.secret ? hmac(o.secret, [u16(r.mac.length), r.mac, response, variables(fields)]) : Buffer.alloc(0);
  const rdata = Buffer.concat([wireName(HMAC_SHA256), u48(timeSigned), u16(FUDGE_S), u16(mac.length), mac, u16(r.originalId), u16(o.error), u16(other.length), other]);
  const rr = Buffer.concat([wireName(r.keyName), u16(T.TSIG), u16(CLASS.ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const out = Buffer.concat([response, rr]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}

/** A request signed as a client signs it (tests, and the replay check's own tests). */
export function signRequest(unsignedMsg: Buffer, o: { keyName: string; secret: Buffer; timeSigned: number; fudge?: number }): Buffer {
  const fields = { keyName: o.keyName, algorithm: HMAC_SHA256, timeSigned: o.timeSigned, fudge: o.fudge ?? FUDGE_S, error: 0, other: Buffer.alloc(0) };
  const mac = hmac(o.secret, [unsignedMsg, variables(fields)]);
  const id = unsignedMsg.readUInt16BE(0);
  const rdata = Buffer.concat([wireName(HMAC_SHA256), u48(o.timeSigned), u16(fields.fudge), u16(mac.length), mac, u16(id), u16(0), u16(0)]);
  const rr = Buffer.concat([wireName(o.keyName), u16(T.TSIG), u16(CLASS.ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const out = Buffer.concat([unsignedMsg, rr]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}
