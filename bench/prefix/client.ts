// One streamed chat completion, timed as a client sees it: time to the first
// SSE data chunk carrying content (TTFT), time to the end of the stream, the
// answer's text (multi-turn sends it back as the next turn's history) and the
// usage the server reported in the final chunk.
import type { Pool } from 'undici';
import { MODEL } from './settings.js';
import type { Message } from './workloads.js';

export type Sample = {
  ok: boolean;
  /** HTTP status; 0 when the connection failed or the stream broke. */
  status: number;
  ttftMs: number;
  e2eMs: number;
  content: string;
  promptTokens?: number;
  cachedTokens?: number;
  instance?: string;
};

type Chunk = { choices?: { delta?: { content?: string | null } }[]; usage?: { prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } };

/** Sends one streamed chat completion through `pool`; `session` goes in `x-session-id` and the OpenAI `user` field. */
export async function streamChat(pool: Pool, messages: Message[], maxTokens: number, session: string | undefined, signal: AbortSignal): Promise<Sample> {
  const body = { model: MODEL, messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true }, ...(session ? { user: session } : {}) };
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(session ? { 'x-session-id': session } : {}) };
  const start = performance.now();
  const s: Sample = { ok: false, status: 0, ttftMs: NaN, e2eMs: NaN, content: '' };
  try {
    const r = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers, body: JSON.stringify(body), signal });
    s.status = r.statusCode;
    const inst = r.headers['x-arus-instance'] ?? r.headers['x-bench-instance'];
    if (typeof inst === 'string') s.instance = inst;
    if (r.statusCode !== 200) {
      await r.body.dump();
      s.e2eMs = performance.now() - start;
      return s;
    }
    let buf = '';
    let done = false;
    for await (const piece of r.body) {
      buf += (piece as Buffer).toString('utf8');
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const c = JSON.parse(data) as Chunk;
        const content = c.choices?.[0]?.delta?.content;
        if (content) {
          if (!s.content) s.ttftMs = performance.now() - start;
          s.content += content;
        }
        if (c.usage) {
          s.promptTokens = c.usage.prompt_tokens;
          s.cachedTokens = c.usage.prompt_tokens_details?.cached_tokens;
        }
      }
    }
    s.e2eMs = performance.now() - start;
    s.ok = done && s.content.length > 0;
    if (!s.ok) s.status = 0;
  } catch {
    s.e2eMs = performance.now() - start;
    s.status = 0;
  }
  return s;
}
