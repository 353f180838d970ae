// Micro-batching of `/v1/embeddings` calls. A GPU embeds a batch of inputs in
// one forward pass, so many concurrent single-input calls cost about as much
// as one call with all their inputs. The batcher holds compatible calls for a
// short window (or until a batch is full), sends one upstream request whose
// `input` is their concatenation, and splits the answer back by index.
// No HTTP here: `send` is given, so the unit is tested alone.

export type BatchOptions<C = undefined> = {
  /** How long the first call of a batch waits for company. */
  windowMs: number;
  /** Inputs in one upstream request; a batch that reaches it goes at once. */
  maxBatch: number;
  /**
   * Sends one (merged) body upstream and returns the whole answer. A thrown
   * error goes to every caller of the batch. `signal` aborts when every caller
   * of the batch has gone. `ctx` is the first caller's (see `SubmitOptions`).
   */
  send(body: Record<string, unknown>, signal: AbortSignal, ctx: C | undefined): Promise<BatchResponse>;
};

export type BatchResponse = { status: number; headers: Record<string, string | string[]>; body: Buffer };

export type SubmitOptions<C = undefined> = {
  /** Extra grouping key (say, the caller's credentials): calls with different keys never share a batch. */
  key?: string;
  /** The caller left: it leaves a batch not yet sent. */
  signal?: AbortSignal;
  /** Handed to `send` when this caller is the first of its batch (say, its request headers). */
  ctx?: C;
};

export interface Batcher<C = undefined> {
  /**
   * Queues an embeddings body for batching. Undefined when the body cannot be
   * batched (no usable `input`, or as many inputs as `maxBatch` already): send it as it is.
   */
  submit(body: Record<string, unknown>, opts?: SubmitOptions<C>): Promise<BatchResponse> | undefined;
  /** Upstream requests sent, and calls they carried. */
  stats(): { batches: number; calls: number; pending: number };
  /** Sends what is pending now. */
  flush(): void;
}

type Input = string | number[];

type Caller = {
  inputs: Input[];
  ctx: unknown;
  body: Record<string, unknown>;
  resolve: (r: BatchResponse) => void;
  reject: (err: unknown) => void;
  gone: boolean;
  /** Called once when the caller's signal aborts. */
  onLeave: () => void;
};

type Pending = { key: string; callers: Caller[]; inputs: number; timer?: NodeJS.Timeout };

/** Inputs as a list, and whether they are text or token ids (never mixed in one request), or undefined if not an embeddings input. */
export function splitInput(input: unknown): { inputs: Input[]; tokens: boolean } | undefined {
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((n) => typeof n === 'number');
  if (typeof input === 'string') return { inputs: [input], tokens: false };
  if (isIds(input)) return { inputs: [input], tokens: true };
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((x) => typeof x === 'string')) return { inputs: input, tokens: false };
  if (input.every(isIds)) return { inputs: input, tokens: true };
  return undefined;
}

/** A stable key of everything but `input`: calls that differ in any option (dimensions, encoding_format, user…) are not merged. */
function optionsKey(body: Record<string, unknown>): string {
  const stable = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
        )
      : v;
  const { input: _input, ...rest } = body;
  return JSON.stringify(stable(rest));
}

/** Splits `total` over `weights` (largest remainder), so the parts sum to it. */
export function apportion(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!(sum > 0) || !Number.isFinite(total)) return weights.map((_, i) => (i === 0 ? total : 0));
  const exact = weights.map((w) => (total * w) / sum);
  const parts = exact.map(Math.floor);
  let rest = total - parts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (rest <= 0) break;
    parts[i]++;
    rest--;
  }
  return parts;
}

const weightOf = (x: Input) => (typeof x === 'string' ? Math.max(1, x.length) : x.length);

export function createBatcher<C = undefined>(opts: BatchOptions<C>): Batcher<C> {
  const windowMs = Math.max(0, opts.windowMs);
  const maxBatch = Math.max(1, opts.maxBatch);
  const pending = new Map<string, Pending>();
  const counters = { batches: 0, calls: 0 };

  function dispatch(p: Pending): void {
    if (pending.get(p.key) === p) pending.delete(p.key);
    if (p.timer) clearTimeout(p.timer);
    const callers = p.callers.filter((c) => !c.gone);
    if (callers.length === 0) return;
    counters.batches++;
    counters.calls += callers.length;
    const ac = new AbortController();
    let live = callers.length;
    // A caller leaving a batch in flight no longer shrinks it; when the last one leaves, the request is aborted.
    for (const c of callers)
      c.onLeave = () => {
        if (--live === 0) ac.abort(new Error('every caller of the batch left'));
      };
    // One caller alone goes as it came (the same body object) and gets the answer as it is.
    const body = callers.length === 1 ? callers[0].body : { ...callers[0].body, input: callers.flatMap((c) => c.inputs) };
    Promise.resolve()
      .then(() => opts.send(body, ac.signal, callers[0].ctx as C | undefined))
      .then(
        (r) => {
          if (callers.length === 1) return callers[0].resolve(r);
          const parts = splitResponse(r, callers);
          callers.forEach((c, i) => c.resolve(parts[i]));
        },
        (err) => callers.forEach((c) => c.reject(err)),
      );
  }

  /** The batch `n` more inputs join: the one waiting for `key`, or a new one when there is none or they would not fit. */
  function batchFor(key: string, n: number): Pending {
    const p = pending.get(key);
    // It would not fit: send what waits, and start a new batch.
    if (p && p.inputs + n > maxBatch) dispatch(p);
    else if (p) return p;
    const fresh: Pending = { key, callers: [], inputs: 0 };
    fresh.timer = setTimeout(() => dispatch(fresh), windowMs);
    pending.set(key, fresh);
    return fresh;
  }

  /** Before the batch is sent, leaving takes the caller's inputs out of it. */
  function leaveUnsent(batch: Pending, c: Caller): void {
    const i = batch.callers.indexOf(c);
    if (i < 0 || pending.get(batch.key) !== batch) return;
    batch.callers.splice(i, 1);
    batch.inputs -= c.inputs.length;
    if (batch.callers.length === 0) {
      clearTimeout(batch.timer);
      pending.delete(batch.key);
    }
  }

  return {
    submit(body, so = {}) {
      const split = splitInput(body.input);
      if (!split || split.inputs.length >= maxBatch) return undefined;
      if (so.signal?.aborted) return Promise.reject(abortReason(so.signal));
      const key = `${so.key ?? ''}\n${split.tokens ? 'ids' : 'text'}\n${optionsKey(body)}`;
      const batch = batchFor(key, split.inputs.length);
      return new Promise<BatchResponse>((resolve, reject) => {
        const c: Caller = { inputs: split.inputs, ctx: so.ctx, body, resolve, reject, gone: false, onLeave: () => leaveUnsent(batch, c) };
        if (so.signal) leaveOnAbort(c, so.signal);
        batch.callers.push(c);
        batch.inputs += c.inputs.length;
        if (batch.inputs >= maxBatch) dispatch(batch);
      });
    },
    stats: () => ({ ...counters, pending: [...pending.values()].reduce((n, p) => n + p.callers.length, 0) }),
    flush() {
      for (const p of [...pending.values()]) dispatch(p);
    },
  };
}

/** The caller leaves when its signal aborts, and gets the abort's reason; once settled, it stops listening. */
function leaveOnAbort(c: Caller, signal: AbortSignal): void {
  const { resolve, reject } = c;
  const onAbort = () => {
    c.gone = true;
    c.onLeave();
    reject(abortReason(signal));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const settle =
    <T,>(f: (v: T) => void) =>
    (v: T) => {
      signal.removeEventListener('abort', onAbort);
      f(v);
    };
  c.resolve = settle(resolve);
  c.reject = settle(reject);
}

// Callers' signals are aborted with an Error (the proxy's ClientGone, or the default AbortError); the
// reason is passed on as it is.
const abortReason = (signal: AbortSignal) => signal.reason as Error;

type EmbeddingList = { data?: unknown; usage?: Record<string, unknown> } & Record<string, unknown>;

/**
 * Each caller's share of a merged answer: its own `data` entries, renumbered
 * from 0, and `usage` split in proportion to its inputs' sizes. An error (any
 * non-2xx) goes to every caller as it is; a 2xx that cannot be split is a 502.
 */
function splitResponse(r: BatchResponse, callers: readonly Caller[]): BatchResponse[] {
  const same = () => callers.map(() => ({ status: r.status, headers: r.headers, body: r.body }));
  if (r.status < 200 || r.status >= 300) return same();
  const total = callers.reduce((n, c) => n + c.inputs.length, 0);
  let parsed: EmbeddingList;
  try {
    parsed = JSON.parse(r.body.toString('utf8')) as EmbeddingList;
  } catch {
    parsed = {};
  }
  const data = Array.isArray(parsed.data) ? (parsed.data as Array<Record<string, unknown>>) : undefined;
  const headers = { ...r.headers, 'content-type': 'application/json' };
  const mismatch = (message: string) => {
    const err = Buffer.from(JSON.stringify({ error: { message, type: 'ServiceUnavailableError', param: null, code: 'batch_mismatch' } }));
    return callers.map(() => ({ status: 502, headers, body: err }));
  };
  if (!data || data.length !== total) return mismatch(`upstream answered ${data?.length ?? 'no'} embeddings for ${total} inputs`);
  // Entries by their index (an upstream may answer out of order).
  const byIndex = new Array<Record<string, unknown> | undefined>(total);
  data.forEach((d, i) => {
    const idx = typeof d?.index === 'number' && d.index >= 0 && d.index < total ? d.index : i;
    byIndex[idx] = d;
  });
  if (byIndex.some((d) => !d || typeof d !== 'object')) return mismatch(`upstream answered duplicate or missing indexes for ${total} inputs`);
  const usage = parsed.usage ?? {};
  const weights = callers.map((c) => c.inputs.reduce((n, x) => n + weightOf(x), 0));
  const usageShares: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(usage)) if (typeof v === 'number') usageShares[k] = apportion(v, weights);
  let at = 0;
  return callers.map((c, ci) => {
    const mine = byIndex.slice(at, at + c.inputs.length).map((d, i) => ({ ...d, index: i }));
    at += c.inputs.length;
    const u: Record<string, unknown> = { ...usage };
    for (const k of Object.keys(usageShares)) u[k] = usageShares[k][ci];
    const out = { ...parsed, data: mine, ...(parsed.usage ? { usage: u } : {}) };
    return { status: r.status, headers, body: Buffer.from(JSON.stringify(out)) };
  });
}
