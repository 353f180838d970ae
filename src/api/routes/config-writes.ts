// What the configuration's write routes share: the merge-patch body and how it
// is read, and the body of a write's result.
import { z } from '@hono/zod-openapi';

export const anyObject = z.record(z.string(), z.unknown()).openapi('MergePatch', { description: 'RFC 7396 JSON Merge Patch' });
export const written = z.object({ version: z.number(), changed: z.array(z.string()) });

/** The request's merge patch: a JSON object, or undefined for anything else (no body, bad JSON, an array). */
export async function readPatch(c: { req: { json(): Promise<unknown> } }): Promise<Record<string, unknown> | undefined> {
  const patch = await c.req.json().catch(() => undefined);
  return patch && typeof patch === 'object' && !Array.isArray(patch) ? (patch as Record<string, unknown>) : undefined;
}
