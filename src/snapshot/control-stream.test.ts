import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { startControlStream, type ControlStreamOptions } from './control-stream.js';

// The reconnect back-off read off a clock the test moves by hand: control is a
// real loopback server, but no wait between tries passes until the test says
// so, so each delay is the one asked for, however busy the machine is.

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A stand-in for control that answers the n-th stream request (from 0) with `answer`. */
async function fakeControl(answer: (res: ServerResponse, n: number) => void): Promise<{ url: string; requests: () => number }> {
  let n = 0;
  const server = createServer((_req, res) => answer(res, n++));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n };
}

const refuse = (res: ServerResponse) => void res.writeHead(503).end();

/** Records each wait the stream asks for and holds it until `elapse()`. */
function handTimer() {
  const delays: number[] = [];
  let due: (() => void) | undefined;
  return {
    delays,
    setTimer(fn: () => void, ms: number) {
      delays.push(ms);
      due = fn;
      return () => void (due = undefined);
    },
    /** Waits (on real time, for the request under way) until the stream sleeps, then ends its sleep. */
    async elapse(): Promise<void> {
      for (const end = Date.now() + 5000; !due; await new Promise((r) => setTimeout(r, 2))) {
        if (Date.now() > end) throw new Error('the stream never waited');
      }
      const fn = due;
      due = undefined;
      fn();
    },
  };
}

function stream(url: string, opts: Partial<ControlStreamOptions>) {
  const s = startControlStream({ url, token: 't', node: 'dns-test', log: silentLogger(), version: () => undefined, onSnapshot: () => {}, ...opts });
  cleanup.push(() => s.stop());
  return s;
}

describe('control stream: reconnect back-off', () => {
  it('doubles from minMs up to maxMs (random() = 1: the full delay)', async () => {
    const control = await fakeControl(refuse);
    const timer = handTimer();
    stream(control.url, { backoff: { minMs: 20, maxMs: 160 }, random: () => 1, setTimer: timer.setTimer });
    for (let i = 0; i < 6; i++) await timer.elapse();
    expect(timer.delays).toEqual([20, 40, 80, 160, 160, 160]);
    expect(control.requests()).toBeGreaterThanOrEqual(6);
  });

  it('jitters each delay to 50–100 % of its ceiling', async () => {
    const control = await fakeControl(refuse);
    const timer = handTimer();
    const draws = [0, 0.5, 1, 0];
    stream(control.url, { backoff: { minMs: 160, maxMs: 160 }, random: () => draws.shift() ?? 1, setTimer: timer.setTimer });
    for (let i = 0; i < 4; i++) await timer.elapse();
    expect(timer.delays).toEqual([80, 120, 160, 80]);
  });

  it('starts again from minMs once control was reached', async () => {
    // Refused twice, then a stream that control opens and closes, then refused again.
    const control = await fakeControl((res, n) => {
      if (n !== 2) return refuse(res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`event: hello\ndata: ${JSON.stringify({ keepaliveMs: 5000 })}\n\n`);
    });
    const timer = handTimer();
    const s = stream(control.url, { backoff: { minMs: 20, maxMs: 160 }, random: () => 1, setTimer: timer.setTimer });
    for (let i = 0; i < 4; i++) await timer.elapse();
    expect(timer.delays).toEqual([20, 40, 20, 40]);
    expect(s.connected).toBe(false);
  });

  it('stop ends a wait under way', async () => {
    const control = await fakeControl(refuse);
    const delays: number[] = [];
    let cancelled = 0;
    const s = stream(control.url, {
      setTimer(_fn, ms) {
        delays.push(ms);
        return () => void cancelled++;
      },
    });
    await expect.poll(() => delays.length, { timeout: 5000, interval: 2 }).toBe(1);
    await s.stop(); // resolves although the wait was never let end
    expect(cancelled).toBe(1);
  });
});

/**
 * Replicas of control answered in memory (no socket): each is down (refused),
 * answers an error status, or opens a stream that sends `hello` and then the
 * versions listed; `current` is what its /v1/snapshots/current holds.
 * Snapshot documents here are only `{"version":n}`: the stream's outcomes come
 * from the test's own `offer`, which keeps versions going forward as the swap does.
 */
function memoryReplicas(replicas: Record<string, { down?: boolean; status?: number; versions?: number[]; current?: number }>) {
  const calls: string[] = [];
  const open = new Map<string, ReadableStreamDefaultController<Uint8Array>>();
  const enc = new TextEncoder();
  const fetchImpl = async (url: string, init?: RequestInit): Promise<Response> => {
    calls.push(url.replace(/\?.*/, ''));
    await Promise.resolve();
    const u = new URL(url);
    const r = replicas[u.origin];
    if (!r || r.down) throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    if (u.pathname === '/v1/snapshots/current') return new Response(JSON.stringify({ version: r.current }), { status: r.current === undefined ? 503 : 200 });
    if (r.status) return new Response('not now', { status: r.status });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        open.set(u.origin, c);
        c.enqueue(enc.encode(`event: hello\ndata: {"keepaliveMs":5000}\n\n`));
        for (const v of r.versions ?? []) c.enqueue(enc.encode(`event: snapshot\ndata: {"version":${v}}\n\n`));
        init?.signal?.addEventListener('abort', () => c.error(init.signal!.reason));
      },
    });
    return new Response(body, { status: 200 });
  };
  /** Cuts a replica's open stream, as its process dying would. */
  const cut = (origin: string) => open.get(origin)?.error(new TypeError('terminated'));
  return { fetchImpl, calls, cut };
}

/** What the node holds, moved forward only, as swap.ts does. */
function held(start?: number) {
  const h = { version: start, offered: [] as string[] };
  const offer = (text: string, url: string) => {
    h.offered.push(url);
    const v = (JSON.parse(text) as { version: number }).version;
    if (h.version !== undefined && v < h.version) return 'older' as const;
    if (v === h.version) return 'same' as const;
    h.version = v;
    return 'applied' as const;
  };
  return { h, offer, version: () => h.version };
}

function captured() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

describe('control stream: several replicas', () => {
  const A = 'http://a.test:1';
  const B = 'http://b.test:2';
  const C = 'http://c.test:3';

  it('moves to the next replica when one fails (refused, an error status), in list order, wrapping around', async () => {
    const m = memoryReplicas({ [A]: { down: true }, [B]: { status: 503 }, [C]: { versions: [4] } });
    const node = held();
    const timer = handTimer();
    const s = stream('', { urls: [A, B, C], fetchImpl: m.fetchImpl, version: node.version, onSnapshot: node.offer, backoff: { minMs: 20, maxMs: 160 }, random: () => 1, setTimer: timer.setTimer });
    await timer.elapse();
    await timer.elapse();
    await expect.poll(() => s.connected, { timeout: 5000, interval: 2 }).toBe(true);
    expect(m.calls).toEqual([`${A}/v1/snapshots/stream`, `${B}/v1/snapshots/stream`, `${C}/v1/snapshots/stream`]);
    expect(timer.delays).toEqual([20, 40]);
    expect(s.url).toBe(C);
    expect(node.h.version).toBe(4);
    expect(s.replicas().map((r) => r.connected)).toEqual([false, false, true]);

    // C dies: back to A (refused), from minMs again since C was reached.
    m.cut(C);
    await timer.elapse();
    await expect.poll(() => m.calls.length, { timeout: 5000, interval: 2 }).toBe(4);
    expect(m.calls[3]).toBe(`${A}/v1/snapshots/stream`);
    expect(timer.delays.slice(0, 3)).toEqual([20, 40, 20]);
    expect(s.connected).toBe(false);
    expect(s.lostAt).toBeDefined();
  });

  it('keeps a lagging replica and its own version, says so once, and moves to one that is not behind', async () => {
    const m = memoryReplicas({ [A]: { versions: [5, 6] }, [B]: { current: 10, versions: [10] } });
    const node = held(9);
    const { log, lines } = captured();
    const s = stream('', { urls: [A, B], fetchImpl: m.fetchImpl, version: node.version, onSnapshot: node.offer, lagPatienceMs: 30, log });
    await expect.poll(() => s.url === B && s.connected && s.replicas()[1].connected, { timeout: 5000, interval: 2 }).toBe(true);
    expect(node.h.version).toBe(10);
    // A's two older snapshots: counted, one warning.
    expect(s.replicas()[0]).toMatchObject({ url: A, older: 2, lagging: true, connected: false });
    expect(lines.filter((l) => l.msg.startsWith('replica lags'))).toEqual([expect.objectContaining({ level: 40, control: A, held: 9 })]);
    // B was asked for its current snapshot, then streamed from; no outage meanwhile.
    expect(m.calls).toEqual([`${A}/v1/snapshots/stream`, `${B}/v1/snapshots/current`, `${B}/v1/snapshots/stream`]);
    expect(s.lostAt).toBeUndefined();
    expect(lines.filter((l) => l.level >= 40 && !l.msg.startsWith('replica lags'))).toEqual([]);
  });

  it('stays on the lagging replica while no other is further, asking again every lagPatienceMs', async () => {
    const m = memoryReplicas({ [A]: { versions: [3] }, [B]: { down: true } });
    const node = held(9);
    const s = stream('', { urls: [A, B], fetchImpl: m.fetchImpl, version: node.version, onSnapshot: node.offer, lagPatienceMs: 20 });
    await expect.poll(() => m.calls.filter((c) => c === `${B}/v1/snapshots/current`).length, { timeout: 5000, interval: 2 }).toBeGreaterThanOrEqual(3);
    expect(s.connected).toBe(true);
    expect(s.url).toBe(A);
    expect(node.h.version).toBe(9);
    expect(m.calls.filter((c) => c.endsWith('/stream'))).toEqual([`${A}/v1/snapshots/stream`]);
  });

  it('with one replica a lagging stream is kept, and nothing else is asked', async () => {
    const m = memoryReplicas({ [A]: { versions: [3, 4] } });
    const node = held(9);
    const s = stream(A, { fetchImpl: m.fetchImpl, version: node.version, onSnapshot: node.offer, lagPatienceMs: 5 });
    await expect.poll(() => s.replicas()[0].older, { timeout: 5000, interval: 2 }).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(m.calls).toEqual([`${A}/v1/snapshots/stream`]);
    expect(s.connected).toBe(true);
  });
});
