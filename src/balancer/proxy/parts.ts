// The proxy's parts, made once per proxy by proxy.ts and shared by both
// request paths: the callback path (call.ts) and the batch path (batch-path.ts).
import type { Logger } from '../../log.js';
import type { Pool } from '../pool.js';
import type { Dispatch } from './dispatch.js';
import type { Outcomes } from './outcomes.js';
import type { Overload } from './overload.js';
import type { Retries } from './retries.js';

export type ProxyParts = {
  pool: Pick<Pool, 'acquire'> & Partial<Pick<Pool, 'wantsPrompt'>>;
  now: () => number;
  log: Logger;
  dispatch: Dispatch;
  overload: Overload;
  retries: Retries;
  outcomes: Outcomes;
};
