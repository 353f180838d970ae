import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
