import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from './engine.js';
import { HttpError, readJson, sendJson } from './http.js';
import { embeddingResponse, errorBody, parseEmbeddingRequest, parseRequest, responder, type EndpointKind, type Kind } from './openai.js';

// The OpenAI model endpoints over the engine: completions (whole or streamed
// as server-sent events) and embeddings. What the wire shapes are is
// openai.ts's business; when tokens come is the engine's.

/** The shared preamble of the model routes: an answer already sent, or go on. */
function gate(eng: Engine, kind: EndpointKind, serves: Set<EndpointKind>, res: ServerResponse, path: string): boolean {
  if (!serves.has(kind)) {
    sendJson(res, 404, errorBody(`this instance does not serve ${path}`, 'NotFoundError', 'endpoint_not_served'));
    return false;
  }
  if (!eng.ready()) {
    sendJson(res, 503, errorBody('model is loading', 'ServiceUnavailable'));
    return false;
  }
  return true;
}

function modelNotFound(res: ServerResponse, model: string): void {
  sendJson(res, 404, errorBody(`The model \`${model}\` does not exist.`, 'NotFoundError', 'model_not_found'));
}

/** `POST /v1/chat/completions` and `POST /v1/completions`. */
export async function complete(
  eng: Engine,
  kind: Kind,
  serves: Set<EndpointKind>,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const body = await readJson(req);
  if (!gate(eng, kind, serves, res, kind === 'chat' ? '/v1/chat/completions' : '/v1/completions')) return;
  const parsed = parseRequest(kind, body);
  if ('error' in parsed) throw new HttpError(400, parsed.error);
  if (parsed.model !== eng.model) return modelNotFound(res, parsed.model);
  const context = parsed.promptTokens + parsed.maxTokens;
  if (context > eng.kvCacheTokens)
    throw new HttpError(
      400,
      `This model's maximum context length is ${eng.kvCacheTokens} tokens. However, you requested ${context} tokens ` +
        `(${parsed.promptTokens} in the messages, ${parsed.maxTokens} in the completion).`,
    );

  const r = responder(parsed);
  let cached = 0;
  const tokens = eng.generate(parsed.maxTokens, signal, { tokens: parsed.promptTokens, hashes: parsed.blocks }, (a) => (cached = a.cachedTokens));
  if (!parsed.stream) {
    let text = '';
    let n = 0;
    for await (const t of tokens) {
      text += t;
      n++;
    }
    return sendJson(res, 200, r.full(text, n, cached));
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let n = 0;
  for await (const t of tokens) {
    res.write(`data: ${JSON.stringify(r.chunk(t, n, n + 1))}\n\n`);
    n++;
  }
  res.write(`data: ${JSON.stringify(r.chunk(null, n, n, cached))}\n\n`);
  res.end('data: [DONE]\n\n');
}

/** `POST /v1/embeddings`: vectors of `dimensions` unless the request names its own. */
export async function embeddings(
  eng: Engine,
  serves: Set<EndpointKind>,
  dimensions: number,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const body = await readJson(req);
  if (!gate(eng, 'embeddings', serves, res, '/v1/embeddings')) return;
  const parsed = parseEmbeddingRequest(body);
  if ('error' in parsed) throw new HttpError(400, parsed.error);
  if (parsed.model !== eng.model) return modelNotFound(res, parsed.model);
  await eng.embed(parsed.inputs.length, signal);
  sendJson(res, 200, embeddingResponse(parsed, parsed.dimensions ?? dimensions));
}
