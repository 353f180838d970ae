import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { blockHashes, renderPrompt, tokensOf } from '../prompt/blocks.js';

// The OpenAI wire shapes the simulator speaks: just enough for clients,
// balancers and probes to treat it as a real vLLM server.

const MAX_TOKENS_DEFAULT = 16;
const MAX_TOKENS_LIMIT = 4096;

const common = {
  model: z.string().min(1),
  stream: z.boolean().optional(),
  max_tokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).optional(),
};

const message = z.looseObject({ role: z.string(), content: z.union([z.string(), z.array(z.unknown()), z.null()]).optional() });

export const chatRequest = z.looseObject({ ...common, messages: z.array(message).min(1) });
export const completionRequest = z.looseObject({ ...common, prompt: z.union([z.string(), z.array(z.string())]) });

export type Kind = 'chat' | 'completion';
/** The endpoints an instance may serve: a generative model serves chat and completion, an embedding model embeddings. */
export type EndpointKind = Kind | 'embeddings';
export const ENDPOINT_KINDS: readonly EndpointKind[] = ['chat', 'completion', 'embeddings'];
/** A valid completion request; its prompt as the KV cache sees it (src/prompt/blocks.ts): tokens, and its full blocks' hashes. */
export type ParsedRequest = { kind: Kind; model: string; stream: boolean; maxTokens: number; promptTokens: number; blocks: number[] };

function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/**
 * Validates a body; returns the request or the message of a 400. The prompt
 * is `renderPrompt(body)` (chat messages rendered in a stable order, or the
 * completion prompt), counted as `tokensOf` it: 4 characters a token, the
 * approximation the balancer's `prefix` strategy predicts with.
 */
export function parseRequest(kind: Kind, body: unknown): ParsedRequest | { error: string } {
  const parsed = kind === 'chat' ? chatRequest.safeParse(body) : completionRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: `${issue.path.join('.') || 'body'}: ${issue.message}` };
  }
  const data = parsed.data;
  const text = renderPrompt(data) ?? '';
  return {
    kind,
    model: data.model,
    stream: data.stream ?? false,
    maxTokens: data.max_tokens ?? MAX_TOKENS_DEFAULT,
    promptTokens: tokensOf(text),
    blocks: blockHashes(text),
  };
}

export function errorBody(message: string, type: string, code?: string) {
  return { error: { message, type, param: null, code: code ?? null } };
}

export function modelList(models: string[]) {
  return {
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'arus-sim', root: id, parent: null })),
  };
}

/** Builds the bodies and stream chunks of one response; `cachedTokens` are the prompt tokens the prefix cache held. */
export function responder(req: ParsedRequest) {
  const id = `${req.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  // OpenAI's usage shape, prompt_tokens_details.cached_tokens included (as vLLM reports it with prefix caching).
  const usage = (completion: number, cachedTokens: number) => ({
    prompt_tokens: req.promptTokens,
    completion_tokens: completion,
    total_tokens: req.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  });
  const finish = 'length';

  return {
    full(text: string, tokens: number, cachedTokens = 0) {
      return req.kind === 'chat'
        ? {
            id,
            object: 'chat.completion',
            created,
            model: req.model,
            choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }],
            usage: usage(tokens, cachedTokens),
          }
        : {
            id,
            object: 'text_completion',
            created,
            model: req.model,
            choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
            usage: usage(tokens, cachedTokens),
          };
    },
    /** One token's chunk, or the closing chunk (with the finish reason and usage) when `token` is null. */
    chunk(token: string | null, index: number, tokens: number, cachedTokens = 0) {
      const finishReason = token === null ? finish : null;
      const extra = token === null ? { usage: usage(tokens, cachedTokens) } : {};
      return req.kind === 'chat'
        ? {
            id,
            object: 'chat.completion.chunk',
            created,
            model: req.model,
            choices: [
              {
                index: 0,
                delta: token === null ? {} : index === 0 ? { role: 'assistant', content: token } : { content: token },
                logprobs: null,
                finish_reason: finishReason,
              },
            ],
            ...extra,
          }
        : {
            id,
            object: 'text_completion',
            created,
            model: req.model,
            choices: [{ index: 0, text: token ?? '', logprobs: null, finish_reason: finishReason }],
            ...extra,
          };
    },
  };
}

const EMBED_MAX_INPUTS = 2048;
const EMBED_MAX_DIMENSIONS = 4096;
const tokenIds = z.array(z.number().int().min(0)).min(1);

export const embeddingRequest = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()).min(1).max(EMBED_MAX_INPUTS), tokenIds, z.array(tokenIds).min(1).max(EMBED_MAX_INPUTS)]),
  dimensions: z.number().int().min(1).max(EMBED_MAX_DIMENSIONS).optional(),
  encoding_format: z.enum(['float', 'base64']).optional(),
});

/** One input as text (token arrays are keyed by their ids) and its token count. */
export type EmbeddingInput = { key: string; tokens: number };
export type ParsedEmbedding = { model: string; inputs: EmbeddingInput[]; dimensions?: number; base64: boolean };

/** Validates an embeddings body; returns the request or the message of a 400. */
export function parseEmbeddingRequest(body: unknown): ParsedEmbedding | { error: string } {
  const parsed = embeddingRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: `${issue.path.join('.') || 'body'}: ${issue.message}` };
  }
  const { input, model, dimensions, encoding_format } = parsed.data;
  // A flat number array is one tokenized input, not many.
  const list = (typeof input === 'string' || typeof input[0] === 'number' ? [input] : input) as Array<string | number[]>;
  const inputs = list.map((x) =>
    typeof x === 'string' ? { key: x, tokens: Math.max(1, countWords(x)) } : { key: `tokens:${x.join(',')}`, tokens: x.length },
  );
  return { model, inputs, dimensions, base64: encoding_format === 'base64' };
}

/**
 * A deterministic unit vector for `text`: the same input always embeds the
 * same way, different inputs (almost surely) differently, so a caller can
 * check it got its own vector back. Exported for tests that predict answers.
 */
export function embedVector(text: string, dimensions: number): number[] {
  const seed = createHash('sha256').update(text).digest();
  // mulberry32 seeded from the hash: cheap, and stable across platforms.
  let a = seed.readUInt32LE(0);
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const v = Array.from({ length: dimensions }, () => next() * 2 - 1);
  const norm = Math.hypot(...v) || 1;
  // Rounded through float32, so base64 and float answers carry the same numbers.
  return v.map((x) => Math.fround(x / norm));
}

export function embeddingResponse(req: ParsedEmbedding, dimensions: number) {
  const tokens = req.inputs.reduce((sum, i) => sum + i.tokens, 0);
  return {
    object: 'list',
    data: req.inputs.map((input, index) => {
      const v = embedVector(input.key, dimensions);
      return { object: 'embedding', index, embedding: req.base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v };
    }),
    model: req.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
