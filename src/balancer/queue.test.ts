import { afterEach, describe, expect, it, vi } from 'vitest';
import { createAdmission, createWaitQueue, OverloadedError } from './queue.js';

afterEach(() => {
  vi.useRealTimers();
});

const settled = async <T>(p: Promise<T>) => {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await Promise.resolve();
  await Promise.resolve();
  return state;
};

describe('admission', () => {
  it('grants up to maxConcurrent at once, then queues FIFO and hands slots over on release', async () => {
    const a = createAdmission({ maxConcurrent: 2, maxQueue: 10, queueTimeoutMs: 1000 });
    const r1 = await a.acquire();
    const r2 = await a.acquire();
    expect(a.active).toBe(2);
    const order: number[] = [];
    const p3 = a.acquire().then((r) => (order.push(3), r));
    const p4 = a.acquire().then((r) => (order.push(4), r));
    expect(a.queued).toBe(2);
    expect(await settled(p3)).toBe('pending');

    r1();
    r1(); // idempotent: must not free a second slot
    const r3 = await p3;
    expect(await settled(p4)).toBe('pending');
    expect(a.active).toBe(2);
    r2();
    await p4;
    expect(order).toEqual([3, 4]);
    r3();
    expect(a.active).toBe(1);
    expect(a.queued).toBe(0);
  });

  it('refuses at once when the queue is full, with a Retry-After', async () => {
    const a = createAdmission({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 2500 });
    await a.acquire();
    void a.acquire().catch(() => {});
    void a.acquire().catch(() => {});
    const err = await a.acquire().catch((e) => e);
    expect(err).toBeInstanceOf(OverloadedError);
    expect(err.reason).toBe('queue-full');
    expect(err.retryAfterS).toBe(3);
    expect(a.queued).toBe(2);
  });

  it('refuses a waiter whose deadline passes, and frees its place', async () => {
    vi.useFakeTimers();
    const a = createAdmission({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100 });
    await a.acquire();
    const p = a.acquire();
    const caught = p.catch((e) => e);
    vi.advanceTimersByTime(99);
    expect(await settled(p)).toBe('pending');
    vi.advanceTimersByTime(1);
    const err = await caught;
    expect(err).toBeInstanceOf(OverloadedError);
    expect(err.reason).toBe('queue-timeout');
    expect(a.queued).toBe(0);
  });

  it('drops an aborted waiter with the signal reason', async () => {
    const a = createAdmission({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 1000 });
    const r = await a.acquire();
    const ac = new AbortController();
    const p = a.acquire(ac.signal).catch((e) => e);
    ac.abort(new Error('client left'));
    expect((await p).message).toBe('client left');
    expect(a.queued).toBe(0);
    r();
    expect(a.active).toBe(0); // the slot was not handed to the aborted waiter
    await expect(a.acquire(ac.signal)).rejects.toThrow('client left');
  });

  it('holds memory to maxQueue under a flood', async () => {
    const a = createAdmission({ maxConcurrent: 4, maxQueue: 50, queueTimeoutMs: 60_000 });
    const all = Array.from({ length: 10_000 }, () => a.acquire().catch((e: OverloadedError) => e.reason));
    expect(a.active).toBe(4);
    expect(a.queued).toBe(50);
    const refused = (await Promise.all(all.slice(54))).filter((x) => x === 'queue-full');
    expect(refused).toHaveLength(10_000 - 54);
  });
});

describe('wait queue', () => {
  it('tries one waiter per key in a pass when nothing is free (a pass costs one pick per key, not per waiter)', async () => {
    const q = createWaitQueue({ maxQueue: 1000, queueTimeoutMs: 60_000 });
    let free = 0;
    const calls = { a: 0, b: 0 };
    const takeFor = (k: 'a' | 'b') => () => {
      calls[k]++;
      if (free === 0) return undefined;
      free--;
      return k;
    };
    const waiting = [...Array.from({ length: 100 }, () => q.wait(takeFor('a'), undefined, 'a')), ...Array.from({ length: 100 }, () => q.wait(takeFor('b'), undefined, 'b'))];
    calls.a = calls.b = 0;
    q.wake();
    expect(calls).toEqual({ a: 1, b: 1 });
    free = 3;
    q.wake();
    expect(q.size).toBe(197);
    free = 1000;
    q.wake();
    expect(await Promise.all(waiting)).toHaveLength(200);
  });

  it('lets a waiter that fits pass one that does not (no head-of-line blocking)', async () => {
    const q = createWaitQueue({ maxQueue: 10, queueTimeoutMs: 1000 });
    const free = new Set<string>();
    const takeOf = (what: string) => () => (free.delete(what) ? what : undefined);
    const a = q.wait(takeOf('a'));
    const b = q.wait(takeOf('b'));
    free.add('b');
    q.wake();
    expect(await b).toBe('b');
    expect(await settled(a)).toBe('pending');
    expect(q.size).toBe(1);
    free.add('a');
    q.wake();
    expect(await a).toBe('a');
  });

  it('serves earlier waiters before a newcomer when capacity appeared unannounced', async () => {
    const q = createWaitQueue({ maxQueue: 10, queueTimeoutMs: 1000 });
    let slots = 0;
    const take = () => (slots > 0 ? slots-- : undefined);
    const first = q.wait(take);
    slots = 1;
    const late = q.wait(take);
    expect(await settled(first)).toBe('resolved');
    expect(await settled(late)).toBe('pending');
    slots = 1;
    q.wake();
    await late;
  });
});
