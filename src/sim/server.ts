import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { createEngine, ENGINE_DEFAULTS, type Engine } from './engine.js';
import { faultAction, faultSchema, type Fault } from './faults.js';
import { metricsText } from './metrics.js';
import {
  embeddingResponse,
  ENDPOINT_KINDS,
  errorBody,
  modelList,
  parseEmbeddingRequest,
  parseRequest,
  responder,
  type EndpointKind,
  type Kind,
} from './openai.js';

export type SimServerOptions = {
  /** Listen address; 127.0.0.1 unless set. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  model?: string;
  warmupMs?: number;
  ttftMs?: number;
  tokensPerSecond?: number;
  /** Sequences generated at once before requests queue. */
  maxRunning?: number;
  /** KV-cache size in tokens: a running sequence holds prompt + max_tokens of it; requests that do not fit queue. */
  kvCacheTokens?: number;
  /** Sequences decoded at full speed; with more running, each gets tokensPerSecond × knee / running. `maxRunning` unless set (no slowdown). */
  batchKnee?: number;
  /** Endpoints served; the others answer 404. All unless set. */
  kinds?: EndpointKind[];
  /** Fixed cost of one embeddings call; calls are computed one at a time. */
  embedCallMs?: number;
  /** Added cost per input of an embeddings call. */
  embedPerInputMs?: number;
  /** Embedding vector length unless a request asks for `dimensions`. */
  embedDimensions?: number;
  /** Device memory reported in /metrics. */
  gpuMemoryBytes?: number;
  /** Share of device memory taken once the model is loaded (vLLM's --gpu-memory-utilization). */
  gpuMemoryUtilization?: number;
  /** Source of randomness for fault rates; Math.random unless set. */
  random?: () => number;
  /** The warm-up clock; Date.now unless set (tests move it by hand). */
  now?: () => number;
  log: Logger;
};

export interface SimServer {
  /** Listens, and starts loading the model (warm-up). */
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
  /**
   * Injects a fault. `crash` closes the listener and drops every connection
   * (connections are refused, as with a killed process); any other fault
   * after a crash restarts it on the same port, and the model loads again.
   * Resolves once the change has taken effect.
   */
  setFault(f: Fault): Promise<void>;
  readonly fault: Fault;
  readonly port: number | undefined;
}

export const SIM_DEFAULTS = {
  host: '127.0.0.1',
  model: 'llama-3-8b',
  warmupMs: 0,
  ttftMs: 100,
  tokensPerSecond: 50,
  maxRunning: 16,
  ...ENGINE_DEFAULTS,
  embedDimensions: 16,
};

const MAX_BODY = 1 << 20;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createSimServer(opts: SimServerOptions): SimServer {
  const d = SIM_DEFAULTS;
  const o = {
    host: opts.host ?? d.host,
    model: opts.model ?? d.model,
    warmupMs: opts.warmupMs ?? d.warmupMs,
    ttftMs: opts.ttftMs ?? d.ttftMs,
    tokensPerSecond: opts.tokensPerSecond ?? d.tokensPerSecond,
    maxRunning: opts.maxRunning ?? d.maxRunning,
    kvCacheTokens: opts.kvCacheTokens ?? d.kvCacheTokens,
    batchKnee: opts.batchKnee,
    embedCallMs: opts.embedCallMs ?? d.embedCallMs,
    embedPerInputMs: opts.embedPerInputMs ?? d.embedPerInputMs,
    gpuMemoryBytes: opts.gpuMemoryBytes ?? d.gpuMemoryBytes,
    gpuMemoryUtilization: opts.gpuMemoryUtilization ?? d.gpuMemoryUtilization,
    now: opts.now,
  };
  const serves = new Set<EndpointKind>(opts.kinds ?? ENDPOINT_KINDS);
  const embedDimensions = opts.embedDimensions ?? d.embedDimensions;
  const random = opts.random ?? Math.random;
  const engine = createEngine(o);
  let log = opts.log.child({ component: 'sim', model: o.model });
  let fault: Fault = { kind: 'none' };
  let server: Server | undefined;
  let sockets = new Set<Socket>();
  let port = opts.port ?? 0;
  let started = false;

  async function listen(): Promise<void> {
    const s = createServer((req, res) => void handle(req, res));
    const conns = new Set<Socket>();
    s.on('connection', (sock) => {
      conns.add(sock);
      sock.once('close', () => conns.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, o.host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
    sockets = conns;
    log = opts.log.child({ component: 'sim', model: o.model, port });
    engine.boot();
    log.info({ host: o.host, warmupMs: o.warmupMs }, 'sim listening');
  }

  async function close(): Promise<void> {
    const s = server;
    if (!s) return;
    server = undefined;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of sockets) sock.destroy();
    await closed;
  }

  async function setFault(f: Fault): Promise<void> {
    const next = faultSchema.parse(f);
    const was = fault;
    fault = next;
    log.info({ fault: next }, 'fault set');
    if (next.kind === 'crash') await close();
    else if (was.kind === 'crash' && started && !server) await listen();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Aborts work in progress (queued or generating) when the client goes away.
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const eng = engine;
    try {
      const path = new URL(req.url ?? '/', 'http://sim').pathname;
      if (path === '/admin/fault') return await admin(req, res);

      const action = faultAction(fault, random);
      if (action.kind === 'hang') return; // never answered: the socket stays open until the client or stop() closes it
      if (action.kind === 'error') return sendJson(res, 500, errorBody('injected fault', 'InternalServerError'));
      if (action.kind === 'delay') await sleep(action.ms, undefined, { signal: ac.signal });
      // Out of GPU memory the process lives on: it still lists and reports, but cannot serve.
      if (action.kind === 'oom' && path !== '/metrics' && path !== '/v1/models') return sendJson(res, 503, OOM_BODY);

      const route = `${req.method} ${path}`;
      switch (route) {
        case 'GET /health':
          return eng.ready() ? send(res, 200, '', 'text/plain') : sendJson(res, 503, errorBody('model is loading', 'ServiceUnavailable'));
        case 'GET /v1/models':
          return sendJson(res, 200, modelList(eng.ready() ? [eng.model] : []));
        case 'GET /metrics':
          return send(res, 200, metricsText(eng.model, gauges(eng)), 'text/plain; version=0.0.4; charset=utf-8');
        case 'POST /v1/chat/completions':
          return await complete(eng, 'chat', serves, req, res, ac.signal);
        case 'POST /v1/completions':
          return await complete(eng, 'completion', serves, req, res, ac.signal);
        case 'POST /v1/embeddings':
          return await embeddings(eng, serves, embedDimensions, req, res, ac.signal);
      }
      const known = ['/health', '/v1/models', '/metrics', '/v1/chat/completions', '/v1/completions', '/v1/embeddings'].includes(path);
      throw new HttpError(known ? 405 : 404, known ? `method ${req.method} not allowed on ${path}` : `no route ${path}`);
    } catch (err) {
      if (ac.signal.aborted) return; // the client left; nobody to answer
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError) return sendJson(res, err.status, errorBody(err.message, 'BadRequestError'));
      log.error({ err }, 'sim request failed');
      sendJson(res, 500, errorBody('internal error', 'InternalServerError'));
    }
  }

  function gauges(eng: Engine) {
    const g = eng.gauges();
    return fault.kind === 'oom' ? { ...g, gpuMemoryUsedBytes: g.gpuMemoryTotalBytes } : g;
  }

  async function admin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET') return sendJson(res, 200, fault);
    if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed on /admin/fault`);
    const parsed = faultSchema.safeParse(await readJson(req));
    if (!parsed.success) throw new HttpError(400, parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    if (parsed.data.kind === 'crash') {
      // Answer first, then die: the caller learns the fault took effect.
      res.once('finish', () => void setFault(parsed.data));
      res.setHeader('connection', 'close');
      return sendJson(res, 200, parsed.data);
    }
    await setFault(parsed.data);
    sendJson(res, 200, parsed.data);
  }

  return {
    async start() {
      started = true;
      if (!server && fault.kind !== 'crash') await listen();
      return { port };
    },
    async stop() {
      started = false;
      await close();
    },
    setFault,
    get fault() {
      return fault;
    },
    get port() {
      return server ? port : undefined;
    },
  };
}

const OOM_BODY = errorBody('CUDA out of memory: the engine is dead', 'ServiceUnavailable', 'gpu_out_of_memory');

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

async function complete(
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
  const tokens = eng.generate(parsed.maxTokens, signal, parsed.promptTokens);
  if (!parsed.stream) {
    let text = '';
    let n = 0;
    for await (const t of tokens) {
      text += t;
      n++;
    }
    return sendJson(res, 200, r.full(text, n));
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let n = 0;
  for await (const t of tokens) {
    res.write(`data: ${JSON.stringify(r.chunk(t, n, n + 1))}\n\n`);
    n++;
  }
  res.write(`data: ${JSON.stringify(r.chunk(null, n, n))}\n\n`);
  res.end('data: [DONE]\n\n');
}

async function embeddings(
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

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body), 'application/json');
}
