import { randomUUID } from 'node:crypto';
import { z } from 'zod';

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
export type ParsedRequest = { kind: Kind; model: string; stream: boolean; maxTokens: number; promptTokens: number };

function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

/** Validates a body; returns the request or the message of a 400. */
export function parseRequest(kind: Kind, body: unknown): ParsedRequest | { error: string } {
  let parsed;
  let text: string;
  if (kind === 'chat') {
    parsed = chatRequest.safeParse(body);
    text = parsed.data?.messages.map((m) => (typeof m.content === 'string' ? m.content : '')).join(' ') ?? '';
  } else {
    parsed = completionRequest.safeParse(body);
    text = [parsed.data?.prompt ?? ''].flat().join(' ');
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: `${issue.path.join('.') || 'body'}: ${issue.message}` };
  }
  const data = parsed.data;
  return {
    kind,
    model: data.model,
    stream: data.stream ?? false,
    maxTokens: data.max_tokens ?? MAX_TOKENS_DEFAULT,
    promptTokens: countWords(text),
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

/** Builds the bodies and stream chunks of one response. */
export function responder(req: ParsedRequest) {
  const id = `${req.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const usage = (completion: number) => ({
    prompt_tokens: req.promptTokens,
    completion_tokens: completion,
    total_tokens: req.promptTokens + completion,
  });
  const finish = 'length';

  return {
    full(text: string, tokens: number) {
      return req.kind === 'chat'
        ? {
            id,
            object: 'chat.completion',
            created,
            model: req.model,
            choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }],
            usage: usage(tokens),
          }
        : {
            id,
            object: 'text_completion',
            created,
            model: req.model,
            choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
            usage: usage(tokens),
          };
    },
    /** One token's chunk, or the closing chunk (with the finish reason and usage) when `token` is null. */
    chunk(token: string | null, index: number, tokens: number) {
      const finishReason = token === null ? finish : null;
      const extra = token === null ? { usage: usage(tokens) } : {};
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
