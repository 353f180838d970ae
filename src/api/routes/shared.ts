import { z } from '@hono/zod-openapi';

export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
export const errorBody = z.object({ error: z.string(), fields: z.array(z.object({ path: z.string(), message: z.string() })).optional() }).openapi('Error');
export const errors = {
  400: json(errorBody, 'invalid input: the fields and the reasons'),
  401: json(errorBody, 'no valid token'),
  403: json(errorBody, 'the token lacks the role'),
  404: json(errorBody, 'no such resource'),
} as const;
export const writeErrors = {
  ...errors,
  409: json(errorBody, 'conflicts with the current configuration'),
  412: json(errorBody, 'If-Match names another version'),
  413: json(errorBody, 'body too large'),
} as const;
/** Anything JSON: for responses whose shape is documented in prose. */
export const anyJson = z.record(z.string(), z.unknown());
