import { z } from 'zod';
import { checkSchema, type Check } from '../config/schema.js';

// The wire contract between probe agents and control.

/** One endpoint to check; `endpoint` names it as `region/zone/address`. */
export type ProbeTarget = { endpoint: string; check: Check };

/** GET /v1/probes/targets. `version` changes whenever the list does. */
export type ProbeTargets = { version: number; targets: ProbeTarget[] };

/** One check of one endpoint: raw, as seen; control decides what it means. */
export type ProbeResult = {
  endpoint: string;
  ok: boolean;
  /** Milliseconds from the start of the check to its success; absent on failure. */
  rttMs?: number;
  /** Why it failed, short: "connect ECONNREFUSED 127.0.0.1:9211", "timeout after 1000 ms". */
  error?: string;
  /** When the check finished (epoch ms). */
  at: number;
};

/** POST /v1/probes/report. `targets` is the version of the targets the agent holds. */
export type ProbeReport = { agent: { id: string; region: string }; targets: number; results: ProbeResult[] };

/** The report's answer: the current targets version, so a stale agent re-fetches. */
export type ProbeReportAck = { targets?: number };

export const probeTargetsSchema = z.object({
  version: z.number().int(),
  targets: z.array(z.object({ endpoint: z.string().min(1), check: checkSchema })),
});

export const probeResultSchema = z.object({
  endpoint: z.string().min(1),
  ok: z.boolean(),
  rttMs: z.number().min(0).optional(),
  error: z.string().optional(),
  at: z.number().int().min(0),
});

export const probeReportSchema = z.object({
  agent: z.object({ id: z.string().min(1), region: z.string().min(1) }),
  targets: z.number().int(),
  results: z.array(probeResultSchema),
});
