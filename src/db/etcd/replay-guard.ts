// The replay guard of dynamic updates across replicas: a MAC is fresh when
// this replica is the first to create its key under tsig/seen/ (a
// create-if-absent transaction), on a lease that outlives the time the
// message could still be taken (its time signed + the fudge window) by a
// margin for clocks that differ between replicas. A MAC one replica took is
// refused by every other; a replica that cannot reach etcd throws (the update
// is answered SERVFAIL, never taken).
//
// The transaction is also this replica's sync point: once its read model
// holds that revision, the copy the update is planned from holds every write
// acknowledged before it (a write from an older copy would be refused by the
// writes anyway, fromCopy, but later and as SERVFAIL).
import type { Etcd3 } from 'etcd3';
import { etcdCall } from './fault.js';
import { KEYS } from './keys.js';
import type { ReadModel } from './read-model.js';

/** Beyond the fudge window, for the clocks of two replicas that differ (s). */
export const CLOCK_MARGIN_S = 60;
/** How long an update waits for the read model to hold the guard's revision before it goes on anyway (ms). */
const SYNC_MS = 1000;

export function createEtcdReplayGuard(deps: { client: Etcd3; windowS: number; readModel?: Pick<ReadModel, 'waitFor'> }) {
  const { client, readModel } = deps;
  return {
    /** False when any replica took this MAC already; records it otherwise. Throws when etcd cannot say. */
    async fresh(mac: Buffer, timeSigned: number, nowS: number): Promise<boolean> {
      const ttl = Math.max(0, timeSigned + deps.windowS - nowS) + CLOCK_MARGIN_S;
      const key = KEYS.tsigSeen(mac);
      const lease = await etcdCall('write', () => client.leaseClient.leaseGrant({ TTL: ttl }));
      const res = await etcdCall('write', () => client.if(key, 'Create', '==', 0).then(client.put(key).value(String(timeSigned)).lease(lease.ID)).commit());
      if (!res.succeeded) {
        // Nothing lives on the lease: given back at once (else it would expire on its own).
        void client.leaseClient.leaseRevoke({ ID: lease.ID }).catch(() => undefined);
        return false;
      }
      await readModel?.waitFor(Number(res.header.revision), SYNC_MS);
      return true;
    },
  };
}
