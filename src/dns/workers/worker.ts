// A DNS worker thread: a responder and a server of its own on the sockets of
// the node (bound by worker 0, shared by descriptor with the others), answering
// from its own copy of the snapshot. Nothing else runs on its event loop:
// control, the API, probe intake and snapshot streaming stay on the main
// thread, so none of them can delay an answer.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { createLocator, type Locator } from '../../geo/locator.js';
import { adoptGeoIpFiles } from '../../geo/geoip.js';
import type { Snapshot } from '../../snapshot/snapshot.js';
import type { ServingState } from '../../snapshot/source.js';
import { createResponder } from '../responder.js';
import { createDnsServer } from '../server.js';
import type { FromWorker, ToWorker, WorkerSetup } from './protocol.js';

const setup = workerData as WorkerSetup;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);

// Log lines go to the main thread, which writes them with its logger (few: per snapshot, never per query).
const log = pino(
  { level: setup.logLevel, base: { worker: setup.index } },
  {
    write(line: string) {
      const { level, msg, time: _t, pid: _p, hostname: _h, ...obj } = JSON.parse(line) as Record<string, unknown>;
      const name = ({ 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' } as Record<number, 'debug' | 'info' | 'warn' | 'error'>)[level as number] ?? 'info';
      send({ type: 'log', level: name, obj, msg: typeof msg === 'string' ? msg : '' });
    },
  },
);

adoptGeoIpFiles(setup.geoip);

/** The state answered from; the locator is kept while the GeoIP settings stay the same. */
let state: ServingState = withLocator(setup.snapshot);

function withLocator(snapshot: Snapshot, previous?: ServingState): ServingState {
  const geo = (s: Snapshot) => JSON.stringify([s.zone.geoip, s.zone.nets]);
  const locator: Locator = previous && geo(previous.snapshot) === geo(snapshot) ? previous.locator : createLocator({ database: snapshot.zone.geoip.database, nets: snapshot.zone.nets });
  return { snapshot, locator };
}

const responder = createResponder({ ...setup.responder, getState: () => state, log });
const server = createDnsServer({ ...setup.server, listen: setup.listen, inherit: setup.inherit, tcpOpenConnections: new Int32Array(setup.tcpOpen), responder, log });

port.on('message', (m: ToWorker) => {
  if (m.type === 'snapshot') {
    try {
      state = withLocator(m.snapshot, state);
      send({ type: 'applied', version: m.snapshot.version });
    } catch (err) {
      // A locator that cannot be built (the main thread built it first, so rarely): keep answering from the last state.
      log.error({ err, version: m.snapshot.version, keeping: state.snapshot.version }, 'snapshot not applied in this worker');
    }
  } else if (m.type === 'stats') {
    const h = getHeapStatistics();
    send({ type: 'stats', id: m.id, responder: responder.stats, server: server.stats, heap: { used: h.used_heap_size, total: h.total_heap_size, external: h.external_memory } });
  } else if (m.type === 'stop') {
    void server.stop().then(() => send({ type: 'stopped' }));
  }
});

/**
 * A full collection, here where no query waits: what starting up left behind (module sources,
 * the first state's garbage) goes before the worker answers, instead of sitting in its heap at
 * rest. V8 hands out `gc` to code that asks for it with --expose-gc, this thread only.
 */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // Not offered on this platform: the heap is collected as V8 sees fit.
  }
}

try {
  const bound = await server.start();
  collectGarbage();
  if (setup.inherit) send({ type: 'ready' });
  else send({ type: 'listening', descriptors: server.descriptors(), udp: bound.udp, tcp: bound.tcp });
} catch (err) {
  send({ type: 'failed', error: (err as Error).message });
}
