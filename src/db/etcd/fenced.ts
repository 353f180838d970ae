// What only the leader writes — its published state (health, latency,
// capacity) and the history of health, failovers and capacity — queued here
// and sent in order, each transaction conditional on the leader key still
// being the one this replica created (its term). A refused transaction means
// another replica leads: the queue is dropped, since that leader decides from
// its own evidence. Event keys are chosen before the write, so a write whose
// answer was lost and is sent again lands once.
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log.js';
import type { NewEvent } from '../history.js';
import type { Election } from './election.js';
import { etcdFault } from './fault.js';
import { KEYS } from './keys.js';
import type { PublishedState } from './state.js';

/** Events sent per transaction at most (etcd's default limit is 128 operations). */
const BATCH = 64;

export interface FencedWriter {
  /** The leader's state to publish; only the latest waiting one is sent. */
  publish(state: Omit<PublishedState, 'term'>): void;
  /** One history row, in order. */
  event(e: NewEvent): void;
  /**
   * The event of a stretch without quorum, written only if no stretch that overlaps it was
   * recorded already (by this replica or another that led before it): the check and the write are
   * one transaction, on a marker key, conditional on the term too.
   */
  gapOnce(gap: { start: number; end: number }, e: NewEvent): Promise<'written' | 'recorded' | 'not-leader' | 'failed'>;
  /** Events waiting, and whether a state is waiting. */
  pending(): { events: number; state: boolean };
  /** Writes refused because another replica leads (fenced), and events dropped with them. */
  stats(): { fenced: number; dropped: number; written: number };
}

export function createFencedWriter(deps: { client: Etcd3; election: Election; log: Logger; now?: () => number }): FencedWriter {
  const { client, election, log } = deps;
  const now = deps.now ?? Date.now;
  let state: Omit<PublishedState, 'term'> | undefined;
  let queue: { key: string; doc: string }[] = [];
  let seq = 0;
  let running = false;
  let backoff = 0;
  const counts = { fenced: 0, dropped: 0, written: 0 };

  // A new term starts a new series of event keys (`events/<term>-<seq>`: unique across terms).
  let seqTerm: string | undefined;
  election.subscribe((l) => {
    if (!l.leader) drop('leadership lost');
    if (l.term !== undefined && l.term !== seqTerm) {
      seqTerm = l.term;
      seq = 0;
    }
  });

  function drop(why: string): void {
    if (queue.length === 0 && !state) return;
    counts.dropped += queue.length;
    log.info({ events: queue.length, state: state !== undefined, why }, 'dropped writes as leader');
    queue = [];
    state = undefined;
  }

  function kick(): void {
    if (running) return;
    running = true;
    void flush().finally(() => {
      running = false;
      if ((queue.length || state) && election.isLeader()) setTimeout(kick, backoff).unref();
    });
  }

  async function flush(): Promise<void> {
    while ((queue.length || state) && election.isLeader()) {
      const term = election.term()!;
      const batch = queue.slice(0, BATCH);
      const s = state;
      const ops = batch.map((e) => client.put(e.key).value(e.doc));
      if (s) ops.push(client.put(KEYS.state).value(JSON.stringify({ ...s, term })));
      try {
        const res = await client.if(KEYS.leader, 'Create', '==', term).then(...ops).commit();
        backoff = 0;
        if (!res.succeeded) {
          counts.fenced++;
          log.warn({ term }, 'a write as leader was refused: this replica no longer leads (fenced)');
          drop('fenced');
          return;
        }
        counts.written += batch.length;
        queue = queue.slice(batch.length);
        if (state === s) state = undefined;
      } catch (err) {
        if (!etcdFault(err, 'write')) log.error({ err }, 'a write as leader failed');
        // etcd away or without quorum: keep the queue, try again with back-off while still leading.
        backoff = Math.min(2000, Math.max(100, backoff * 2));
        return;
      }
    }
  }

  return {
    publish(s) {
      if (!election.isLeader()) return;
      state = s;
      kick();
    },
    event(e) {
      if (!election.isLeader()) {
        counts.dropped++;
        return;
      }
      queue.push({ key: KEYS.event(election.term()!, ++seq), doc: JSON.stringify({ ...e, time: e.time ?? now(), region: e.region ?? null }) });
      kick();
    },
    gapOnce: (gap, e) => writeGapOnce({ client, election, log, now, key: (term) => KEYS.event(term, ++seq), written: () => counts.written++ }, gap, e),
    pending: () => ({ events: queue.length, state: state !== undefined }),
    stats: () => ({ ...counts }),
  };
}

/** Stretches without quorum closer than this are one outage in the history. */
export const GAP_MERGE_MS = 10_000;

/** FencedWriter.gapOnce: the marker read, then the marker and the event written in one transaction if nothing overlapping was. */
async function writeGapOnce(
  d: { client: Etcd3; election: Election; log: Logger; now: () => number; key: (term: string) => string; written: () => void },
  gap: { start: number; end: number },
  e: NewEvent,
): Promise<'written' | 'recorded' | 'not-leader' | 'failed'> {
  const { client, election } = d;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!election.isLeader()) return 'not-leader';
    const term = election.term()!;
    try {
      const kv = (await client.get(KEYS.gap).exec()).kvs[0];
      const prev = kv && (JSON.parse(kv.value.toString()) as { start: number; end: number });
      // A stretch that began within GAP_MERGE_MS of the recorded one's end is the same outage (etcd re-electing as its members come back).
      if (prev && prev.start <= gap.end && prev.end + GAP_MERGE_MS >= gap.start) return 'recorded';
      const doc = JSON.stringify({ ...e, time: e.time ?? d.now(), region: e.region ?? null });
      const res = await client
        .if(KEYS.leader, 'Create', '==', term)
        .and(KEYS.gap, 'Mod', '==', kv ? Number(kv.mod_revision) : 0)
        .then(client.put(KEYS.gap).value(JSON.stringify(gap)), client.put(d.key(term)).value(doc))
        .commit();
      if (res.succeeded) {
        d.written();
        return 'written';
      }
      // Fenced (the next turn sees it) or the marker moved under us (checked again).
    } catch (err) {
      if (!etcdFault(err, 'write')) d.log.error({ err }, 'recording a stretch without quorum failed');
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }
  return 'failed';
}
