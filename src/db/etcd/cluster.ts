// Who the control plane is: every replica registers itself under its lease
// (its URL, whether it leads, the revision its read model has applied), and
// the etcd members are asked how they are. `GET /v1/cluster` and /metrics show it.
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../../log.js';
import type { Election } from './election.js';
import { KEYS } from './keys.js';
import type { ReadModel } from './read-model.js';

export type ReplicaInfo = { id: string; url: string; role: 'leader' | 'follower'; applied: number; at: number };
export type MemberInfo = { id: string; name: string; clientUrls: string[]; healthy: boolean; leader: boolean; revision?: number; error?: string };

export interface ClusterView {
  /** This replica's own view, now. */
  self(): ReplicaInfo;
  /** Every replica registered (its lease alive). */
  replicas(): Promise<ReplicaInfo[]>;
  /** etcd's members and the health of each. */
  members(): Promise<MemberInfo[]>;
  stop(): void;
}

export function createClusterView(deps: {
  client: Etcd3;
  /** A client of one member alone, to ask it its status. */
  memberClient: (url: string) => Etcd3;
  id: string;
  url: string;
  election: Election;
  readModel: ReadModel;
  log: Logger;
  everyMs?: number;
}): ClusterView {
  const { client, election, readModel, log } = deps;
  const self = (): ReplicaInfo => ({ id: deps.id, url: deps.url, role: election.isLeader() ? 'leader' : 'follower', applied: readModel.applied(), at: Date.now() });
  let registeredOn: Lease | undefined;

  // Registered on the replica's lease: a replica that dies leaves the list within its TTL.
  const register = async () => {
    const lease = election.lease();
    if (!lease) return;
    await lease.put(KEYS.replica(deps.id)).value(JSON.stringify(self()));
    if (registeredOn !== lease) log.info({ id: deps.id }, 'registered as a control replica');
    registeredOn = lease;
  };
  const timer = setInterval(() => void register().catch(() => {}), deps.everyMs ?? 2000);
  timer.unref();
  void register().catch(() => {});

  return {
    self,
    async replicas() {
      const res = await client.getAll().prefix(KEYS.replicaPrefix).strings();
      // The role each registered (every 2 s) may be older than the last election: who leads is the leader key's.
      const leader = election.leaderId();
      const out = Object.values(res).map((v): ReplicaInfo => {
        const r = JSON.parse(v) as ReplicaInfo;
        return { ...r, role: r.id === leader ? 'leader' : 'follower' };
      });
      const mine = out.findIndex((r) => r.id === deps.id);
      if (mine >= 0) out[mine] = self();
      else out.push(self());
      return out.sort((a, b) => a.id.localeCompare(b.id));
    },
    async members() {
      const list = await client.cluster.memberList({});
      return Promise.all(
        list.members.map(async (m): Promise<MemberInfo> => {
          const base = { id: m.ID, name: m.name, clientUrls: m.clientURLs, healthy: false, leader: false };
          const url = m.clientURLs[0];
          if (!url) return { ...base, error: 'not started' };
          try {
            const status = await deps.memberClient(url).maintenance.status({ deadline: Date.now() + 1000 });
            return { ...base, healthy: true, leader: status.leader === status.header.member_id, revision: Number(status.header.revision) };
          } catch (err) {
            return { ...base, error: (err as Error).message };
          }
        }),
      );
    },
    stop: () => clearInterval(timer),
  };
}
