/** One server-sent event: its `event` name (`message` when none), `data` lines joined by newlines, and `id`. */
export type SseEvent = { event: string; data: string; id?: string };

/**
 * An incremental reader of a `text/event-stream` (the WHATWG rules that
 * matter here): feed it text as it arrives, in pieces of any size; it calls
 * `onEvent` for each complete event. Comment lines (`:`) are skipped. Throws
 * once an unfinished line or event grows past `maxBytes`, so a broken peer
 * cannot make it buffer without end.
 */
export function createSseReader(onEvent: (e: SseEvent) => void, opts: { maxBytes?: number } = {}): (text: string) => void {
  const max = opts.maxBytes ?? 16 * 1024 * 1024;
  let pending = '';
  let event = '';
  let data: string[] = [];
  let size = 0;
  let id: string | undefined;

  const line = (l: string) => {
    if (l === '') {
      if (data.length > 0) onEvent({ event: event || 'message', data: data.join('\n'), ...(id === undefined ? {} : { id }) });
      event = '';
      data = [];
      size = 0;
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    const value = colon < 0 ? '' : l.slice(colon + (l[colon + 1] === ' ' ? 2 : 1));
    if (field === 'event') event = value;
    else if (field === 'data') {
      data.push(value);
      size += value.length;
      if (size > max) throw new Error(`server-sent event larger than ${max} bytes`);
    } else if (field === 'id' && !value.includes('\0')) id = value;
  };

  const eol = /\r\n|\r|\n/g;
  return (text) => {
    pending += text;
    let start = 0;
    for (;;) {
      eol.lastIndex = start;
      const m = eol.exec(pending);
      if (!m) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index + 1 === pending.length) break;
      line(pending.slice(start, m.index));
      start = m.index + m[0].length;
    }
    pending = pending.slice(start);
    if (pending.length > max) throw new Error(`server-sent event line longer than ${max} bytes`);
  };
}
