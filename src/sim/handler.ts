import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Engine } from './engine.js';
import { faultRoute, type FaultSwitch } from './fault-route.js';
import { faultAction } from './faults.js';
import { HttpError, send, sendJson } from './http.js';
import { metricsText } from './metrics.js';
import { complete, embeddings } from './model-routes.js';
import { errorBody, modelList, type EndpointKind } from './openai.js';

// One request from arrival to answer: what the injected fault does to it,
// which route serves it, and how a failure is answered.

export type SimHandlerDeps = {
  engine: Engine;
  /** Endpoints served; the others answer 404. */
  serves: Set<EndpointKind>;
  embedDimensions: number;
  /** Draws for fault rates. */
  random: () => number;
  faults: FaultSwitch;
  /** A request failed for a reason of the simulator's own, not the client's (answered 500). */
  failed(err: unknown): void;
};

const OOM_BODY = errorBody('CUDA out of memory: the engine is dead', 'ServiceUnavailable', 'gpu_out_of_memory');
const ROUTES = ['/health', '/v1/models', '/metrics', '/v1/chat/completions', '/v1/completions', '/v1/embeddings'];

export function createSimHandler(deps: SimHandlerDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { engine, serves, embedDimensions, random, faults } = deps;

  function gauges(eng: Engine) {
    const g = eng.gauges();
    return faults.fault.kind === 'oom' ? { ...g, gpuMemoryUsedBytes: g.gpuMemoryTotalBytes } : g;
  }

  return async function handle(req, res) {
    // Aborts work in progress (queued or generating) when the client goes away.
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const eng = engine;
    try {
      const path = new URL(req.url ?? '/', 'http://sim').pathname;
      if (path === '/admin/fault') return await faultRoute(faults, req, res);

      const action = faultAction(faults.fault, random);
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
      const known = ROUTES.includes(path);
      throw new HttpError(known ? 405 : 404, known ? `method ${req.method} not allowed on ${path}` : `no route ${path}`);
    } catch (err) {
      if (ac.signal.aborted) return; // the client left; nobody to answer
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError) return sendJson(res, err.status, errorBody(err.message, 'BadRequestError'));
      deps.failed(err);
      sendJson(res, 500, errorBody('internal error', 'InternalServerError'));
    }
  };
}
