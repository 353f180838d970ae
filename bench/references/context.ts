// What the bench's steps share once everything is started: the configuration,
// the model servers, the servers under test and the asking socket.
import type { ChildProcess } from 'node:child_process';
import type { Asker } from './ask.js';
import type { Server } from './processes.js';
import type { Region } from './shared-config.js';

export type Bench = {
  dir: string;
  regions: Region[];
  /** The country of every /24 of the mix that Arus's database places. */
  countryOf: Map<string, string>;
  jkt: Region;
  jktAddresses: Set<string>;
  /** One `arus sim` per zone: every health check of that zone points at it. */
  sims: Map<string, { port: number; proc?: ChildProcess }>;
  servers: Server[];
  arus: Server;
  /** The servers that have not failed so far. */
  live(): Server[];
  asker: Asker;
};
