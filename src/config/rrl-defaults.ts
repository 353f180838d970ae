// Response rate limiting's defaults as plain data: the zone schema's defaults
// (config/schema.ts), and what the DNS responder starts from without loading
// the schemas (a DNS worker thread carries no zod: it saves each ~16 MB of heap).

export const RRL_DEFAULTS = {
  enabled: true,
  responsesPerSecond: 100,
  nxdomainsPerSecond: 20,
  errorsPerSecond: 20,
  slip: 2,
  ipv4PrefixLength: 24,
  ipv6PrefixLength: 56,
  maxTableSize: 100_000,
  exempt: ['127.0.0.0/8', '::1/128'],
} as const;
