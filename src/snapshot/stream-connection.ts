import { createSseReader } from './sse.js';

// One connection to control's snapshot stream: the request, a watchdog that
// gives up on a control gone silent, and the server-sent events it carries.
// Reconnecting, and what an outage means, is control-stream.ts's.

export type StreamEvents = {
  /** Control's `hello`: the stream is open and control answers. */
  hello(): void;
  /** A `snapshot` event's document, as sent. */
  snapshot(text: string): void;
};

export type StreamConnectionOptions = {
  /** The stream's URL, query included. */
  url: string;
  token: string;
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  /** Control not heard from for this long before its `hello` (which names its keep-alive interval): give up. */
  silenceMs: number;
  /** Aborts the connection (stop, or the watchdog). */
  ac: AbortController;
  on: StreamEvents;
};

/** One connection: resolves or throws when it ends; every event proves control alive. */
export async function connectStream(opts: StreamConnectionOptions): Promise<void> {
  const { ac, on } = opts;
  let silence = opts.silenceMs;
  let watchdog: NodeJS.Timeout | undefined;
  const heard = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => ac.abort(new Error(`nothing from control for ${silence} ms`)), silence);
    watchdog.unref();
  };
  heard();
  try {
    const res = await (opts.fetchImpl ?? fetch)(opts.url, { headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), accept: 'text/event-stream' }, signal: ac.signal });
    if (res.status !== 200 || !res.body) {
      const body = await res.text().catch(() => '');
      throw new Error(`control answered ${res.status}: ${body.slice(0, 200)}`);
    }
    const read = createSseReader((e) => {
      if (e.event === 'hello') {
        const hello = JSON.parse(e.data) as { keepaliveMs?: number };
        if (typeof hello.keepaliveMs === 'number' && hello.keepaliveMs > 0) silence = 3 * hello.keepaliveMs;
        on.hello();
      } else if (e.event === 'snapshot') on.snapshot(e.data);
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      read(decoder.decode(chunk, { stream: true }));
      heard();
    }
    throw new Error('control closed the stream');
  } finally {
    clearTimeout(watchdog);
  }
}
