// One RFC 2136 UPDATE, from its bytes to the signed answer: TSIG checked
// (the key, the MAC, the time, a MAC not seen before), the zone section the
// apex's SOA, prerequisites and updates applied to the zone's records, the new
// zone checked by the zone's rules and written as one configuration write
// (audited with the key's name, in the history, in the next snapshot, whose
// version is the SOA serial). Messages are handled one after the other.
import { ConfigError, parseZoneDoc, validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { RecordDoc } from '../config/records.js';
import type { AuditEntry } from '../db/audit.js';
import type { TsigKeyStore } from '../db/tsig-keys.js';
import type { Writes } from '../db/writes.js';
import type { Logger } from '../log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { applyUpdate, RCODE } from './apply.js';
import { FormatError, OPCODE_UPDATE, parseMessage, T, type UpdateMessage } from './message.js';
import { createQueryAnswerer } from './query.js';
import { authenticate, FUDGE_S, signResponse } from './tsig.js';

export const OUTCOMES = ['applied', 'refused', 'badkey', 'badsig', 'badtime', 'notauth', 'formerr', 'notimp', 'failed'] as const;
export type UpdateOutcome = (typeof OUTCOMES)[number];

export type UpdateDeps = {
  store: { getConfig(): Config | undefined };
  writes: Pick<Writes, 'apply'>;
  keys: Pick<TsigKeyStore, 'get' | 'used'>;
  /** Control rebuilds the snapshot at once. */
  tick(): void;
  count(outcome: UpdateOutcome): void;
  log: Logger;
  /** Seconds since the epoch. */
  nowS?: () => number;
  /** The snapshot DNS answers from: signed standard queries and AXFR are answered from it (query.ts); without it, NOTIMP. */
  snapshot?: () => Snapshot;
  /** The MACs taken already; this process's own unless given (replicas share one in etcd: db/etcd/replay-guard.ts). */
  replay?: ReplayGuard;
};

/** A request whose MAC was taken already is a replay. `fresh` records it; it throws when it cannot say (the update is SERVFAIL, never taken). */
export type ReplayGuard = { fresh(mac: Buffer, timeSigned: number, nowS: number): boolean | Promise<boolean> };

/** MACs seen within the fudge window, in this process: a request whose MAC was seen is a replay. */
export function createReplayGuard(): ReplayGuard {
  const seen = new Map<string, number>();
  return {
    /** False when the MAC was seen before; records it otherwise. */
    fresh(mac: Buffer, timeSigned: number, nowS: number): boolean {
      for (const [k, until] of seen) {
        if (until >= nowS) break;
        seen.delete(k);
      }
      if (seen.size > 50_000) for (const [k, until] of seen) if (until < nowS) seen.delete(k);
      const k = mac.toString('base64');
      if (seen.has(k)) return false;
      seen.set(k, timeSigned + FUDGE_S);
      return true;
    },
  };
}

function header(id: number, rcode: number, zone?: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11) | (rcode & 0xf), 2);
  if (zone) h.writeUInt16BE(1, 4);
  return zone ? Buffer.concat([h, zone]) : h;
}

/** The zone with the update's records, checked by the zone's rules and written as one audited write; the rcode. */
async function commit(deps: UpdateDeps, config: Config, out: { records: RecordDoc[]; changed: string[] }, keyName: string): Promise<number> {
  const log = deps.log;
  const before = config.zone.records ?? [];
  if (JSON.stringify(before) === JSON.stringify(out.records)) {
    deps.count('applied');
    return RCODE.NOERROR;
  }
  const { records: _, ...rest } = config.zone;
  let zone;
  try {
    zone = parseZoneDoc(out.records.length ? { ...rest, records: out.records } : rest, 'update');
    validateConfig({ zone, regions: config.regions });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    deps.count('refused');
    log.info({ key: keyName, issues: err.issues.map((i) => `${i.path}: ${i.message}`) }, 'update refused by the zone rules, nothing changed');
    return RCODE.REFUSED;
  }
  const subject = `records:${out.changed.join(',')}`.slice(0, 500);
  const audit = { actor: keyName, role: 'tsig' as AuditEntry['role'], action: `UPDATE ${config.zone.apex}`, subject, before, after: zone.records ?? [], status: 200 };
  try {
    await deps.writes.apply({ zone, regions: [] }, { actor: keyName, reason: `dynamic update by TSIG key ${keyName}: ${out.changed.join(', ')}`, audit });
  } catch (err) {
    deps.count('failed');
    log.warn({ key: keyName, err: (err as Error).message }, 'update not written');
    return RCODE.SERVFAIL;
  }
  deps.tick();
  deps.count('applied');
  log.info({ key: keyName, changed: out.changed }, 'update applied');
  return RCODE.NOERROR;
}

export function createUpdateHandler(deps: UpdateDeps): (msg: Buffer) => Promise<Buffer | undefined> {
  const nowS = deps.nowS ?? (() => Math.floor(Date.now() / 1000));
  const replay = deps.replay ?? createReplayGuard();
  const log = deps.log;
  let queue: Promise<unknown> = Promise.resolve();
  const queries = deps.snapshot && createQueryAnswerer({ snapshot: deps.snapshot, keys: deps.keys, log, nowS });

  const handle = async (msg: Buffer): Promise<Buffer | undefined> => {
    let m: UpdateMessage;
    try {
      m = parseMessage(msg);
    } catch (err) {
      if (!(err instanceof FormatError) || msg.length < 12 || msg[2] & 0x80) return undefined;
      deps.count('formerr');
      return header(msg.readUInt16BE(0), RCODE.FORMERR);
    }
    if (msg[2] & 0x80) return undefined; // a response: never answered
    const zoneEcho = m.zone.length === 1 ? m.zoneBytes : undefined;
    if (m.opcode !== OPCODE_UPDATE) {
      if (m.opcode === 0 && queries) return queries(msg, m); // QUERY: SOA for certbot, AXFR for external-dns
      deps.count('notimp');
      const h = header(m.id, RCODE.NOTIMP);
      h[2] = 0x80 | (m.opcode << 3); // the request's opcode echoed
      return h;
    }
    const now = nowS();
    const auth = authenticate(msg, m, (name) => deps.keys.get(name), now);
    if (auth.kind === 'formerr') {
      deps.count('formerr');
      return header(m.id, RCODE.FORMERR, zoneEcho);
    }
    if (auth.kind === 'unsigned') {
      deps.count('refused');
      log.debug({ id: m.id }, 'update refused: not signed with a TSIG key');
      return header(m.id, RCODE.REFUSED, zoneEcho);
    }
    if (auth.kind === 'refused') {
      deps.count(auth.outcome);
      log.info({ key: auth.t.keyName, outcome: auth.outcome }, 'update refused: TSIG does not verify');
      return signResponse(header(m.id, RCODE.NOTAUTH, zoneEcho), { request: auth.t, secret: auth.secret, error: auth.error, nowS: now });
    }
    const { t, key } = auth;
    const answer = (rcode: number) => signResponse(header(m.id, rcode, zoneEcho), { request: t, secret: key.secret, error: 0, nowS: now });
    let fresh: boolean;
    try {
      fresh = await replay.fresh(t.mac, t.timeSigned, now);
    } catch (err) {
      deps.count('failed');
      log.warn({ key: t.keyName, err: (err as Error).message }, 'update not taken: its replay check failed');
      return answer(RCODE.SERVFAIL);
    }
    if (!fresh) {
      deps.count('refused');
      log.warn({ key: t.keyName }, 'update refused: a replay (its MAC was seen already)');
      return answer(RCODE.REFUSED);
    }
    deps.keys.used(key.name);
    const config = deps.store.getConfig();
    if (!config) {
      deps.count('failed');
      return answer(RCODE.SERVFAIL);
    }
    const z = m.zone[0];
    if (m.zone.length !== 1 || z.type !== T.SOA) {
      deps.count('formerr');
      return answer(RCODE.FORMERR);
    }
    if (z.name !== config.zone.apex) {
      deps.count('notauth');
      return answer(RCODE.NOTAUTH);
    }
    const out = applyUpdate(msg, { zone: config.zone, prereq: m.prereq, updates: m.updates, allow: key.allow, regionIds: config.regions.map((r) => r.id) });
    if (out.rcode !== 0 || !('records' in out)) {
      const reason = 'reason' in out ? out.reason : '';
      deps.count(out.rcode === RCODE.FORMERR ? 'formerr' : out.rcode === RCODE.NOTAUTH ? 'notauth' : 'refused');
      log.info({ key: key.name, rcode: out.rcode, reason }, 'update refused, nothing changed');
      return answer(out.rcode);
    }
    return answer(await commit(deps, config, out, key.name));
  };

  return (msg) => {
    const next = queue.then(() => handle(msg));
    queue = next.catch(() => undefined);
    return next;
  };
}
