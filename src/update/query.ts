// Standard queries and zone transfers on control's update listener, for the
// clients that ask the server they update: certbot's rfc2136 plugin finds the
// zone with an SOA query there, external-dns lists the zone with AXFR before
// it changes anything.
//
// Only messages signed with a TSIG key are answered (unsigned ones are
// REFUSED: the DNS listeners answer everyone, with rate limits; this one
// answers the key holders, so nothing here reflects or amplifies). Answers
// come from the zone compiled from control's current snapshot, the very
// bodies the DNS nodes send (dns/zone.ts), so the SOA serial is the snapshot
// version here as there. Names steer() answers get NODATA: their A/AAAA
// depend on the client asking, and nobody resolves through this address.
//
// AXFR (RFC 5936) sends the SOA, the NS set, the glue and the static records,
// the SOA again last, in one message; steered names are left out. The
// listener hands back one message per request, so a zone too large for one
// (about 64 KB) is SERVFAIL, logged.
import { readBody, recordBytes } from '../dns/body-records.js';
import { readQuery } from '../dns/query-reader.js';
import { writeError, writeResponse } from '../dns/response-writer.js';
import { CLASS_IN, DROP, RCODE, TYPE, type Body, type Query } from '../dns/wire.js';
import { wireKey, zoneOf, type Zone, type ZoneNode } from '../dns/zone.js';
import type { TsigKeyStore } from '../db/tsig-keys.js';
import type { Logger } from '../log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { UpdateMessage } from './message.js';
import { authenticate, signResponse } from './tsig.js';

export type QueryDeps = {
  /** The snapshot the DNS nodes answer from now (control's current one). */
  snapshot(): Snapshot;
  keys: Pick<TsigKeyStore, 'get' | 'used'>;
  log: Logger;
  /** Seconds since the epoch. */
  nowS?: () => number;
};

const NOTAUTH = 9;
/** The UDP payload size our OPT advertises (as the DNS listeners do). */
const UDP_SIZE = 1232;
/** The largest message (TCP's length prefix), less room for our TSIG RR (a 255-octet key name, the MAC, BADTIME's other data). */
const MAX_BODY = 0xffff - 400;

/** Logs a refusal at info once a minute per kind (with how many were only at debug since), else at debug: nothing per query above debug. */
function createNotices(log: Logger, everyMs = 60_000) {
  const last = new Map<string, { at: number; quiet: number }>();
  return (kind: string, fields: Record<string, unknown>, text: string) => {
    const now = Date.now();
    const l = last.get(kind);
    if (l && now - l.at < everyMs) {
      l.quiet++;
      return log.debug(fields, text);
    }
    log.info(l?.quiet ? { ...fields, alsoSince: l.quiet } : fields, text);
    last.set(kind, { at: now, quiet: 0 });
  };
}

/** A standard QUERY (opcode 0) that reached the update listener, answered; undefined: send nothing. Never throws. */
export function createQueryAnswerer(deps: QueryDeps): (msg: Buffer, m: UpdateMessage) => Buffer | undefined {
  const nowS = deps.nowS ?? (() => Math.floor(Date.now() / 1000));
  const log = deps.log;
  const notice = createNotices(log);

  const answer = (msg: Buffer, m: UpdateMessage): Buffer | undefined => {
    const q = readQuery(msg);
    if (q.rcode === DROP) return undefined;
    if (q.rcode !== RCODE.NOERROR) return writeError(msg, q, q.rcode, UDP_SIZE);
    const what = q.qtype === TYPE.AXFR ? 'AXFR' : 'query';
    const now = nowS();
    const auth = authenticate(msg, m, (name) => deps.keys.get(name), now);
    if (auth.kind === 'formerr') return writeError(msg, q, RCODE.FORMERR, UDP_SIZE);
    if (auth.kind === 'unsigned') {
      const fix = what === 'AXFR' ? 'sign it with a key from `arus tsig create` (external-dns: --rfc2136-tsig-axfr)' : 'sign it with a TSIG key, or ask a DNS listener';
      notice(`unsigned ${what}`, {}, `${what} refused: not signed with a TSIG key; ${fix}`);
      return writeError(msg, q, RCODE.REFUSED, UDP_SIZE);
    }
    if (auth.kind === 'refused') {
      notice(`${auth.outcome} ${what}`, { key: auth.t.keyName, outcome: auth.outcome }, `${what} refused: TSIG does not verify`);
      return signResponse(writeError(msg, q, NOTAUTH, UDP_SIZE)!, { request: auth.t, secret: auth.secret, error: auth.error, nowS: now });
    }
    const { t: request, key } = auth;
    const sign = (out: Buffer) => signResponse(out, { request, secret: key.secret, error: 0, nowS: now });
    const fail = (rcode: number) => sign(writeError(msg, q, rcode, UDP_SIZE)!);
    deps.keys.used(key.name);
    let zone: Zone;
    try {
      zone = zoneOf(deps.snapshot());
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'query not answered: the zone does not compile');
      return fail(RCODE.SERVFAIL);
    }
    if (q.qclass !== CLASS_IN) return fail(RCODE.REFUSED);
    if (q.qtype === TYPE.AXFR) {
      if (q.key !== wireKey(zone.apex)) return fail(NOTAUTH);
      const body = transferBody(zone);
      if (q.questionEnd + body.bytes.length + 64 > MAX_BODY) {
        notice('axfr too large', { octets: body.bytes.length }, 'AXFR not answered (SERVFAIL): the zone does not fit one message, and the update listener sends one per request');
        return fail(RCODE.SERVFAIL);
      }
      log.debug({ key: key.name, records: body.an }, 'AXFR answered');
      return sign(writeResponse(msg, q, body, 0, UDP_SIZE, MAX_BODY));
    }
    if (q.qtype === TYPE.IXFR || q.qtype === TYPE.MAILA || q.qtype === TYPE.MAILB) return fail(RCODE.NOTIMP);
    const body = lookup(zone, q);
    if (!body) return fail(RCODE.REFUSED);
    return sign(writeResponse(msg, q, body, 0, UDP_SIZE, MAX_BODY));
  };

  return (msg, m) => {
    try {
      return answer(msg, m);
    } catch (err) {
      // A key that does not decrypt (ARUS_TSIG_KEY changed), a zone body that does not read back.
      log.warn({ err: (err as Error).message }, 'query not answered (SERVFAIL)');
      return writeError(msg, readQuery(msg), RCODE.SERVFAIL, UDP_SIZE);
    }
  };
}

/** The body the DNS nodes answer `q` with, steered names aside (NODATA); undefined outside the zone. */
function lookup(zone: Zone, q: Query): Body | undefined {
  let node = zone.nodes.get(q.key);
  if (node === undefined && zone.wildcards) node = zone.wildcard(q.key);
  if (node === undefined) return zone.nxdomain(q.key);
  if (node.dynamic !== undefined && (q.qtype === TYPE.A || q.qtype === TYPE.AAAA)) return node.nodata;
  return node.bodies.get(q.qtype) ?? node.other;
}

/** The answer section of an AXFR: the SOA, every RRset of the zone's names but steered ones, the SOA. */
export function transferBody(zone: Zone): Body {
  const apex = zone.nodes.get(wireKey(zone.apex));
  if (!apex) throw new Error(`the zone has no node at its apex ${zone.apex}`);
  const soa = rrsetOf(apex, TYPE.SOA);
  const rrs: Buffer[] = [...soa];
  for (const node of [apex, ...[...zone.nodes.values()].filter((n) => n !== apex)]) {
    if (node.dynamic !== undefined) continue;
    for (const type of node.bodies.keys()) if (type !== TYPE.ANY && !(node === apex && type === TYPE.SOA)) rrs.push(...rrsetOf(node, type));
  }
  rrs.push(...soa);
  return { bytes: Buffer.concat(rrs), an: rrs.length, ns: 0, ar: 0, rcode: RCODE.NOERROR, aa: true };
}

/**
 * The records of `type` owned by the node, read back out of the body the
 * DNS nodes send for it (whatever else that body holds: a CNAME chain, glue),
 * each written out whole: owner and names in RDATA uncompressed.
 */
function rrsetOf(node: ZoneNode, type: number): Buffer[] {
  const body = node.bodies.get(type);
  if (!body) return [];
  const key = wireKey(node.name);
  let an;
  try {
    an = readBody(body, key).an;
  } catch (err) {
    throw new Error(`the body of ${node.name} type ${type} does not read back: ${(err as Error).message}`, { cause: err });
  }
  return an.filter((r) => r.type === type && r.owner.toString('latin1') === key).map((r) => recordBytes(r));
}
