// A DNS worker thread: a responder and a server of its own on the sockets of
// the node (bound by worker 0, shared by descriptor with the others), answering
// from its own copy of the snapshot. Nothing else runs on its event loop:
// control, the API, probe intake and snapshot streaming stay on the main
// thread, so none of them can delay an answer.
import { readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { createLocator, type Locator } from '../../geo/locator.js';
import { adoptGeoIpFiles } from '../../geo/geoip.js';
import type { Snapshot } from '../../snapshot/snapshot.js';
import type { ServingState } from '../../snapshot/source.js';
import type { Remote, Transport } from '../replies.js';
import { createResponder, type Responder } from '../responder.js';
import { createDnsServer, type DnsServer } from '../server.js';
import { closeTogether } from './barrier.js';
import type { FromWorker, StartWorker, ToWorker, WorkerSetup } from './protocol.js';

const setup = workerData as WorkerSetup;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const stopBarrier = new Int32Array(setup.stopBarrier);

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

function withLocator(cloned: Snapshot, previous?: ServingState): ServingState {
  const snapshot = withBuffers(cloned);
  const geo = (s: Snapshot) => JSON.stringify([s.zone.geoip, s.zone.nets]);
  const locator: Locator = previous && geo(previous.snapshot) === geo(snapshot) ? previous.locator : createLocator({ database: snapshot.zone.geoip.database, nets: snapshot.zone.nets });
  return { snapshot, locator };
}

/**
 * A structured clone turns Buffers into plain Uint8Arrays: a signed zone's
 * RDATA, signatures and key are made Buffers again (views, not copies). The
 * ZSK's KeyObject is cloned as it is.
 */
function withBuffers(snapshot: Snapshot): Snapshot {
  const d = snapshot.dnssec;
  if (!d) return snapshot;
  const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  const keyRrsets = d.keyRrsets.map((r) => ({ ...r, rdata: r.rdata.map(buf), rrsigs: r.rrsigs.map(buf) }));
  return Object.freeze({ ...snapshot, dnssec: { keyRrsets, ...(d.zsk ? { zsk: { ...d.zsk, rdata: buf(d.zsk.rdata) } } : {}) } });
}

/** The state answered from (the locator kept while the GeoIP settings stay the same), and what answers. */
let state: ServingState | undefined;
let node: { responder: Responder; server: DnsServer } | undefined;

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') void start(m);
  else if (m.type === 'stop' && !node) closeTogether(stopBarrier, () => send({ type: 'stopped' }));
  else if (m.type === 'quiesce') {
    node?.server.quiesce();
    // Replies sent in this turn have left when the next one runs.
    setImmediate(() => send({ type: 'quiet' }));
  } else if (!node || !state) return;
  else if (m.type === 'snapshot') void follow(m.snapshot);
  else if (m.type === 'stats') {
    const h = getHeapStatistics();
    send({ type: 'stats', id: m.id, responder: node.responder.stats, server: node.server.stats, heap: { used: h.used_heap_size, total: h.total_heap_size, external: h.external_memory } });
  } else if (m.type === 'stop') {
    // The shared descriptors close inside the barrier (stop() closes them before it returns).
    const server = node.server;
    void closeTogether(stopBarrier, () => server.stop()).then(() => send({ type: 'stopped' }));
  }
});

// Recent queries, one in SAMPLE_EVERY, for making a new snapshot's answers before it is swapped in.
const SAMPLE_EVERY = 16;
const SAMPLE_SIZE = 256;
const sample: { packet: Buffer; address: string }[] = [];
let seen = 0;

/** The responder, sampling the queries it answers (a copy of one in SAMPLE_EVERY: they outlive the read buffer). */
function sampled(r: Responder): Responder {
  const answer = (packet: Buffer, remote: Remote, transport: Transport, idleMs?: number) => {
    if (++seen % SAMPLE_EVERY === 0) {
      const entry = { packet: Buffer.from(packet), address: remote.address };
      if (sample.length < SAMPLE_SIZE) sample.push(entry);
      else sample[(seen / SAMPLE_EVERY) % SAMPLE_SIZE] = entry;
    }
    return r(packet, remote, transport, idleMs);
  };
  return Object.assign(answer, { stats: r.stats, rrl: r.rrl, prepare: r.prepare });
}

let following: Snapshot | undefined;
let busy = false;

/**
 * A new snapshot: its answers for the sampled recent queries made first, a slice per turn while
 * the current state answers, then swapped in (the queries after the swap find their answers
 * made). Snapshots that arrive meanwhile wait; only the newest is taken.
 */
async function follow(snapshot: Snapshot): Promise<void> {
  following = snapshot;
  if (busy) return;
  busy = true;
  try {
    while (following && node && state) {
      const next = following;
      following = undefined;
      try {
        const ready = withLocator(next, state);
        await node.responder.prepare(ready, sample);
        state = ready;
        send({ type: 'applied', version: next.version });
      } catch (err) {
        // A zone or locator that cannot be built (the main thread built them first, so rarely): keep answering from the last state.
        log.error({ err, version: next.version, keeping: state.snapshot.version }, 'snapshot not applied in this worker');
      }
    }
  } finally {
    busy = false;
  }
}

async function start(m: StartWorker): Promise<void> {
  try {
    adoptGeoIpFiles(m.geoip);
    state = withLocator(m.snapshot);
    const responder = sampled(createResponder({ ...setup.responder, getState: () => state!, log }));
    const tcpOpenConnections = new Int32Array(setup.tcpOpen);
    const server = createDnsServer({ ...setup.server, listen: setup.listen, inherit: m.inherit, tcpOpenConnections, responder, log });
    node = { responder, server };
    const bound = await server.start();
    const tid = threadId();
    if (m.inherit) send({ type: 'ready', tid });
    else send({ type: 'listening', descriptors: server.descriptors(), udp: bound.udp, tcp: bound.tcp, tid });
    // Once the first answers are out (a node restarted under load answers at once).
    setTimeout(collectGarbage, 2000).unref();
  } catch (err) {
    send({ type: 'failed', error: (err as Error).message });
  }
}

/** This thread's id in the kernel (Linux: /proc/thread-self), so that the main thread can leave its priority alone. */
function threadId(): number | undefined {
  try {
    return Number(basename(readlinkSync('/proc/thread-self')));
  } catch {
    return undefined;
  }
}

/**
 * A full collection, once, soon after start: what starting up left behind (module sources, the
 * first state's garbage) goes, instead of sitting in the worker's heap at rest. V8 hands out `gc` to code that asks for it with --expose-gc, this thread only.
 */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // Not offered on this platform: the heap is collected as V8 sees fit.
  }
}
