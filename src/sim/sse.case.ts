// Test helper: the server-sent events of a response, each with when it arrived.

/** Reads `res` to the end; `at` is ms since `t0` (performance.now()) when each event was complete. */
export async function readSse(res: Response, t0: number): Promise<{ at: number; data: string }[]> {
  const events: { at: number; data: string }[] = [];
  let buf = '';
  for await (const part of res.body!.pipeThrough(new TextDecoderStream())) {
    buf += part;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      events.push({ at: performance.now() - t0, data: buf.slice(0, i).replace(/^data: /, '') });
      buf = buf.slice(i + 2);
    }
  }
  return events;
}
