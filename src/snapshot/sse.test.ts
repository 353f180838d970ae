import { describe, expect, it } from 'vitest';
import { createSseReader, type SseEvent } from './sse.js';

function read(pieces: string[], opts?: { maxBytes?: number }): SseEvent[] {
  const out: SseEvent[] = [];
  const feed = createSseReader((e) => out.push(e), opts);
  for (const p of pieces) feed(p);
  return out;
}

describe('server-sent event reader', () => {
  const stream = 'event: hello\ndata: {"a":1}\n\n: a comment\nevent: snapshot\nid: 7\ndata: line one\ndata:line two\n\ndata: plain\n\n';
  const expected = [
    { event: 'hello', data: '{"a":1}' },
    { event: 'snapshot', id: '7', data: 'line one\nline two' },
    { event: 'message', id: '7', data: 'plain' },
  ];

  it('reads events, skipping comments, whatever the pieces the text arrives in', () => {
    expect(read([stream])).toEqual(expected);
    expect(read([...stream])).toEqual(expected);
    expect(read([stream.slice(0, 20), stream.slice(20, 21), stream.slice(21)])).toEqual(expected);
  });

  it('accepts CRLF and CR line ends, even split between pieces', () => {
    const crlf = stream.replaceAll('\n', '\r\n');
    expect(read([crlf])).toEqual(expected);
    expect(read([...crlf])).toEqual(expected);
    // A CR at the very end could be half of a CRLF: the next piece settles it.
    expect(read([stream.replaceAll('\n', '\r')])).toEqual(expected.slice(0, 2));
    expect(read([stream.replaceAll('\n', '\r'), ':'])).toEqual(expected);
  });

  it('dispatches nothing for an unfinished event', () => {
    expect(read(['event: snapshot\ndata: {"half":'])).toEqual([]);
  });

  it('refuses to buffer without end', () => {
    expect(() => read(['data: ' + 'x'.repeat(200)], { maxBytes: 100 })).toThrow(/longer than 100 bytes/);
    expect(() => read(['data: ' + 'x'.repeat(60) + '\n' + 'data: ' + 'x'.repeat(60) + '\n'], { maxBytes: 100 })).toThrow(/larger than 100 bytes/);
  });
});
