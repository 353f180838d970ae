// One leader among the control replicas, chosen by etcd: the leader key is
// created on the candidate's lease (TTL a few seconds, renewed every third of
// it), and only if it does not exist. The key's create revision is the term;
// every write as leader is conditional on it (fenced.ts), so a leader that was
// paused or cut off past its lease cannot write once another has taken over.
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Logger } from '../../log.js';
import { KEYS } from './keys.js';

export type Leadership = { leader: boolean; term?: string; leaderId?: string };

export interface Election {
  start(): Promise<void>;
  /** True while this replica holds the leader key on a live lease. */
  isLeader(): boolean;
  /** The term this replica leads in (the leader key's create revision), while it leads. */
  term(): string | undefined;
  /** Who leads now, as last seen (undefined: nobody). */
  leaderId(): string | undefined;
  /** This replica's lease (its registration lives on it too); undefined between leases. */
  lease(): Lease | undefined;
  /** Called on every change of leadership seen here. */
  subscribe(fn: (l: Leadership) => void): () => void;
  /** Gives leadership up at once (the lease is revoked, the key vanishes). */
  stop(): Promise<void>;
}

type Deps = { client: Etcd3; id: string; url: string; ttlS: number; log: Logger };

/** A candidate's state, shared by the steps below. */
type State = {
  lease?: Lease;
  term?: string;
  leaderId?: string;
  watcher?: Watcher;
  stopped: boolean;
  /** When a keepalive last succeeded (ms). */
  lastOk: number;
  /**
   * Leases given up while etcd was away: a new etcd leader extends every
   * lease, so the old leader key would outlive the outage by a TTL or two.
   * Revoked first thing when etcd answers, so the next election is at once.
   */
  stale: Lease[];
  renewal?: Promise<void>;
  listeners: Set<(l: Leadership) => void>;
  /** What the listeners were last told (leader, term, who leads), so that they hear each change once. */
  told?: string;
};

export function createElection(deps: Deps): Election {
  const st: State = { stopped: false, lastOk: 0, stale: [], listeners: new Set() };
  let clock: NodeJS.Timeout | undefined;
  return {
    async start() {
      st.watcher = await followLeaderKey(deps.client, {
        put(leader) {
          st.leaderId = leader;
          if (leader !== deps.id) stepDown(deps, st, `${leader} leads now`);
          notify(st);
        },
        gone() {
          st.leaderId = undefined;
          stepDown(deps, st, 'the leader key is gone');
          void campaign(deps, st).catch((err: Error) => deps.log.debug({ err: err.message }, 'campaign failed; the next renewal tries again'));
        },
      });
      await renew(deps, st);
      clock = ownClock(deps, st);
    },
    isLeader: () => st.term !== undefined,
    term: () => st.term,
    leaderId: () => st.leaderId,
    lease: () => st.lease,
    subscribe(fn) {
      st.listeners.add(fn);
      return () => st.listeners.delete(fn);
    },
    async stop() {
      st.stopped = true;
      clearInterval(clock);
      const l = st.lease;
      st.lease = undefined;
      st.term = undefined;
      await st.watcher?.cancel().catch(() => {});
      await l?.revoke().catch(() => {});
    },
  };
}

/**
 * Tells the listeners, once a change: a campaign won and the watch's put of the same leader key
 * both report it, and a listener that acts on taking over (control publishes at once) must not
 * act twice.
 */
function notify(st: State): void {
  const l: Leadership = { leader: st.term !== undefined, term: st.term, leaderId: st.leaderId };
  const told = JSON.stringify(l);
  if (told === st.told) return;
  st.told = told;
  for (const fn of st.listeners) fn(l);
}

function stepDown(deps: Deps, st: State, why: string): void {
  if (st.term === undefined) return;
  deps.log.warn({ term: st.term, why }, 'no longer the leader');
  st.term = undefined;
  if (st.leaderId === deps.id) st.leaderId = undefined;
  notify(st);
}

/** A lease and a campaign, again until both work (etcd may be away); one renewal at a time. */
function renew(deps: Deps, st: State): Promise<void> {
  st.renewal ??= (async () => {
    while (!st.stopped && !st.lease) {
      try {
        await revokeAll(st.stale);
        await newLease(deps, st);
        await campaign(deps, st);
      } catch (err) {
        st.lease = undefined;
        deps.log.debug({ err: (err as Error).message }, 'cannot campaign yet; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })().finally(() => (st.renewal = undefined));
  return st.renewal;
}

async function newLease(deps: Deps, st: State): Promise<void> {
  const l = deps.client.lease(deps.ttlS, { autoKeepAlive: true });
  l.on('lost', (err) => {
    if (st.lease !== l || st.stopped) return;
    stepDown(deps, st, `lease lost: ${err.message}`);
    st.lease = undefined;
    setTimeout(() => void renew(deps, st), 500).unref();
  });
  l.on('keepaliveSucceeded', () => (st.lastOk = Date.now()));
  await l.grant();
  st.lastOk = Date.now();
  st.lease = l;
}

/** Creates the leader key on this candidate's lease if there is none; else learns who leads. */
async function campaign(deps: Deps, st: State): Promise<void> {
  if (st.stopped || !st.lease) return;
  const leaseId = await st.lease.grant();
  const { client } = deps;
  const res = await client
    .if(KEYS.leader, 'Create', '==', 0)
    .then(client.put(KEYS.leader).value(JSON.stringify({ id: deps.id, url: deps.url })).lease(leaseId))
    .else(client.get(KEYS.leader))
    .commit();
  if (res.succeeded) {
    st.term = res.header.revision;
    st.leaderId = deps.id;
    deps.log.info({ term: st.term }, 'elected leader');
  } else {
    const kv = res.responses[0]?.response_range?.kvs?.[0];
    st.leaderId = kv ? (JSON.parse(kv.value.toString()) as { id: string }).id : undefined;
    if (kv && st.leaderId === deps.id && st.term === undefined) {
      if (String(kv.lease) === String(leaseId)) {
        // On this replica's own lease: its own campaign won (another one, run at the same time, is telling it now).
        st.term = String(kv.create_revision);
        deps.log.info({ term: st.term }, 'elected leader');
      } else {
        // On a lease this replica no longer holds: a campaign that timed out (no quorum) and was applied after all,
        // on a lease etcd now keeps alive. Nobody else can lead while it stands: take it away, and campaign again.
        deps.log.warn({ createRevision: String(kv.create_revision) }, "a leader key in this replica's name from a campaign it lost track of: removed");
        st.leaderId = undefined;
        await client.if(KEYS.leader, 'Create', '==', String(kv.create_revision)).then(client.delete().key(KEYS.leader)).commit();
      }
    }
  }
  notify(st);
}

/**
 * The lease by this replica's own clock: one not renewed for a whole TTL has
 * run out, whatever the client still believes (etcd3 says `lost` only after
 * about two TTLs), and is given up; with no lease, a renewal; without
 * leadership, a campaign every second.
 */
function ownClock(deps: Deps, st: State): NodeJS.Timeout {
  let ticks = 0;
  const timer = setInterval(() => {
    if (st.lease && Date.now() - st.lastOk > deps.ttlS * 1000) {
      stepDown(deps, st, `no keepalive for ${deps.ttlS} s`);
      st.stale.push(st.lease);
      st.lease = undefined;
    }
    if (!st.lease && !st.stopped) void renew(deps, st);
    // A follower also campaigns every second: a deletion of the leader key missed by a dropped watch costs a second, not the cluster's leader.
    else if (st.term === undefined && ++ticks % 4 === 0) void campaign(deps, st).catch(() => {});
  }, 250);
  timer.unref();
  return timer;
}

/** Revokes the leases in order, each removed once revoked; throws (to be tried again) while etcd does not answer. */
async function revokeAll(leases: Lease[]): Promise<void> {
  while (leases.length) {
    await leases[0].revoke();
    leases.shift();
  }
}

/** Watches the leader key: who leads after each put, and its deletion. */
async function followLeaderKey(client: Etcd3, on: { put(leaderId: string): void; gone(): void }): Promise<Watcher> {
  const w = await client.watch().key(KEYS.leader).create();
  w.on('put', (kv) => on.put((JSON.parse(kv.value.toString()) as { id: string }).id));
  w.on('delete', () => on.gone());
  return w;
}
