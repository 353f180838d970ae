// An etcd call that failed for the cluster's sake (no quorum, members gone,
// the deadline passed) becomes a StorageError 'unavailable': the API answers
// 503 with Retry-After, control's background writes back off. Anything else
// (a bug, a bad request) stays what it is.
import { StorageError } from '../faults.js';
import { isEtcdUnavailable } from './client.js';

/** The StorageError for an etcd failure that a retry may cure; undefined for anything else. */
export function etcdFault(err: unknown, what: string): StorageError | undefined {
  if (err instanceof StorageError) return err;
  if (!isEtcdUnavailable(err)) return undefined;
  const e = err as { name?: string; message?: string } | null;
  // A write that ran out of time may still be applied once quorum returns: its outcome is unknown, not undone.
  const outcome = what === 'write' ? 'it may or may not have been applied (a write is whole or absent, never half); read it back before retrying' : 'nothing was read';
  return new StorageError('unavailable', String(e?.name ?? 'EtcdError'), `the replicated store (etcd) did not answer the ${what} in time (no quorum, or no member reachable): ${e?.message ?? String(err)}; ${outcome}`, 2, { cause: err });
}

/** Runs an etcd call, turning a cluster failure into a StorageError. */
export async function etcdCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw etcdFault(err, what) ?? err;
  }
}
