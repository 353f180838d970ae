import type { IncomingMessage, ServerResponse } from 'node:http';
import { faultSchema, type Fault } from './faults.js';
import { HttpError, readJson, sendJson } from './http.js';

// `GET /admin/fault` and `POST /admin/fault`: reading and setting the
// injected fault over HTTP, as `setFault` does in-process.

/** The fault in force and how to change it (the sim server itself). */
export interface FaultSwitch {
  readonly fault: Fault;
  setFault(f: Fault): Promise<void>;
}

export async function faultRoute(faults: FaultSwitch, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET') return sendJson(res, 200, faults.fault);
  if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed on /admin/fault`);
  const parsed = faultSchema.safeParse(await readJson(req));
  if (!parsed.success) throw new HttpError(400, parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  if (parsed.data.kind === 'crash') {
    // Answer first, then die: the caller learns the fault took effect.
    res.once('finish', () => void faults.setFault(parsed.data));
    res.setHeader('connection', 'close');
    return sendJson(res, 200, parsed.data);
  }
  await faults.setFault(parsed.data);
  sendJson(res, 200, parsed.data);
}
