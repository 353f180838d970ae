// How a read model keeps following etcd: one watch from the revision after
// what it applied, followed again (from what it applied, not from what etcd3
// believes) whenever the stream drops or is cancelled, with the whole prefix
// copied first when that revision was compacted away; and a watchdog for a
// stream that stalls without dropping (a frozen member).
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from '../../log.js';
import { PREFIX } from './keys.js';

export type WatchBatch = { kv: IKeyValue; deleted: boolean }[];

export function createWatchFollower(deps: {
  client: Etcd3;
  log: Logger;
  /** The revision the read model holds everything up to. */
  applied(): number;
  /** Copies the whole prefix again (after a compaction). */
  resync(): Promise<void>;
  onBatch(revision: number, batch: WatchBatch): void;
}) {
  const { client, log } = deps;
  let watcher: Watcher | undefined;
  let connected = false;
  let stopped = false;

  async function watch(): Promise<void> {
    const w = await client.watch().prefix(PREFIX).startRevision(String(deps.applied() + 1)).create();
    watcher = w;
    connected = true;
    w.on('data', (res) => {
      const revision = Number(res.header.revision);
      const batch = (res.events ?? []).map((e) => ({ kv: e.kv, deleted: e.type === 'Delete' }));
      if (batch.length) deps.onBatch(Math.max(revision, ...batch.map((b) => Number(b.kv.mod_revision))), batch);
    });
    // etcd3 resumes a dropped stream from the revision current when it connected, not from what
    // was applied: a stream lost during catch-up would skip changes. So this replica resumes itself.
    w.on('disconnected', () => rewatch('the watch stream dropped'));
    w.on('error', (err) => rewatch(`the watch was cancelled: ${err.message}`));
  }

  let rewatching: Promise<void> | undefined;
  /** Follows again from what was applied; copies the whole prefix first when that revision was compacted away. */
  function rewatch(why: string): void {
    connected = false;
    if (stopped || rewatching) return;
    const old = watcher;
    watcher = undefined;
    rewatching = (async () => {
      await old?.cancel().catch(() => {});
      for (let attempt = 0; !stopped; attempt++) {
        try {
          if (await compacted(deps.applied() + 1)) {
            log.warn({ applied: deps.applied(), why }, 'the read model fell behind a compaction: copying it again');
            await deps.resync();
          }
          await watch();
          log.info({ applied: deps.applied(), why }, 'read model follows etcd again');
          return;
        } catch (err) {
          if (attempt % 10 === 0) log.warn({ err: (err as Error).message, why }, 'cannot follow etcd yet; retrying');
          await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
        }
      }
    })().finally(() => (rewatching = undefined));
  }

  /** Whether `revision` is older than etcd's compaction (a read at it fails with OutOfRange). */
  async function compacted(revision: number): Promise<boolean> {
    try {
      await client.get(PREFIX).revision(revision).exec();
      return false;
    } catch (err) {
      if (/compacted|OutOfRange/i.test(`${(err as Error).name} ${(err as Error).message}`)) return true;
      throw err;
    }
  }

  // The one watch stream is shared by the client's watchers and can stall on a frozen member:
  // keys changed past what was applied, seen twice 5 s apart, mean the watch lags; follow again.
  let lagging = 0;
  const watchdog = setInterval(() => {
    if (stopped || rewatching || !watcher) return;
    void client
      .getAll()
      .prefix(PREFIX)
      .minModRevision(String(deps.applied() + 1))
      .keys()
      .then(
        (keys) => {
          lagging = keys.length > 0 ? lagging + 1 : 0;
          if (lagging >= 2) {
            lagging = 0;
            rewatch(`${keys.length} keys changed past revision ${deps.applied()} never arrived`);
          }
        },
        () => {},
      );
  }, 5000);
  watchdog.unref();

  return {
    start: () => watch(),
    connected: () => connected,
    async stop() {
      stopped = true;
      clearInterval(watchdog);
      await watcher?.cancel().catch(() => {});
    },
  };
}
