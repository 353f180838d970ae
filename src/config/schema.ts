import { isIP } from 'node:net';
import { z } from 'zod';
import { autoscaleSchema, staleCacheSchema } from './scaling-schema.js';
import { mask, parseAddress, parseNetwork } from '../geo/prefix.js';
import { checkRecords, pinnedCollisions, recordSchema } from './records.js';
import { RRL_DEFAULTS } from './rrl-defaults.js';

/**
 * The configuration's shape. A region's YAML document in `regions/` and the
 * JSON body of `PUT /v1/regions/:id` are both a `RegionDoc`; the zone's
 * settings (apex, name servers, SOA, services, nets) are a `ZoneDoc`.
 */

const slug = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, -), at most 32 characters');

const hostname = z
  .string()
  .transform((s) => s.toLowerCase().replace(/\.$/, ''))
  .pipe(
    z
      .string()
      .max(253)
      .regex(
        /^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)+$/,
        'must be a fully qualified domain name such as gslb.example.com',
      ),
  );

export const ipAddress = z.string().refine((s) => isIP(s) !== 0, 'must be an IPv4 or IPv6 address');

const countryCode = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code such as SG'));

export const cidr = z
  .string()
  .refine((s) => parseNetwork(s) !== undefined, 'must be a network in CIDR notation such as 10.0.0.0/8')
  .refine((s) => {
    const [text, len] = s.split('/');
    const addr = parseAddress(text);
    return addr === undefined || mask(addr, Number(len)).words.every((w, i) => w === addr.words[i]);
  }, 'has host bits set: write the network address, such as 10.0.0.0/8');

/** One spelling per network, to find the same network written twice. */
function networkKey(s: string): string {
  const net = parseNetwork(s);
  return net ? `${net.address.family}:${net.address.words.join('.')}/${net.length}` : s;
}

const httpCheck = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/ }),
  /** Expected HTTP status; 200 unless set. */
  status: z.number().int().min(100).max(599).default(200),
  /** A substring the body must contain, e.g. the model's name in /v1/models. */
  bodyContains: z.string().min(1).optional(),
  timeoutMs: z.number().int().min(50).max(60_000).default(1000),
});

const tcpCheck = z.strictObject({
  type: z.literal('tcp'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  timeoutMs: z.number().int().min(50).max(60_000).default(1000),
});

export const checkSchema = z.discriminatedUnion('type', [httpCheck, tcpCheck]);

export const endpointSchema = z
  .strictObject({
    /** The address DNS hands out. */
    address: ipAddress.optional(),
    /**
     * Or a name: a managed load balancer's (an AWS ALB, a Google or Azure load
     * balancer). Answered as a CNAME to it, or with `flatten` as its addresses,
     * resolved by control through its resolver (`--resolver`).
     */
    hostname: hostname.refine((s) => isIP(s) === 0, 'is an IP address: write it as address').optional(),
    /** Answer the hostname's A/AAAA records instead of a CNAME (as Cloudflare's CNAME flattening does). */
    flatten: z.boolean().optional(),
    weight: z.number().int().min(0).max(65535).default(100),
    /** Administratively marked down in configuration. */
    down: z.boolean().default(false),
    check: checkSchema.optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.address === undefined) === (e.hostname === undefined))
      ctx.addIssue({ code: 'custom', path: e.address === undefined ? [] : ['hostname'], message: 'an endpoint has an address or a hostname, exactly one of them' });
    if (e.flatten !== undefined && e.hostname === undefined) ctx.addIssue({ code: 'custom', path: ['flatten'], message: 'only for a hostname endpoint' });
  });

/** An endpoint's name in keys, traces, overrides and the API: its address, or its hostname. */
export function endpointName(e: Pick<EndpointDoc, 'address' | 'hostname'>): string {
  return e.address ?? e.hostname ?? '';
}

export const availabilityZoneSchema = z.strictObject({
  id: slug,
  down: z.boolean().default(false),
  endpoints: z.array(endpointSchema).min(1, 'a zone needs at least one endpoint'),
});

const requestKind = z.enum(['chat', 'completion', 'embeddings']);

export const balancerInstanceSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be a short lowercase name (a-z, 0-9, . _ -)'),
  /** The model server's base URL, e.g. http://10.1.2.3:8000 */
  url: z.url({ protocol: /^https?$/ }),
  weight: z.number().int().min(0).max(65535).default(100),
  /** Models the instance serves (the request's `model`). */
  models: z.array(z.string().min(1).max(200)).min(1, 'an instance serves at least one model'),
  kinds: z.array(requestKind).min(1).default(['chat', 'completion', 'embeddings']),
});

const listenAddress = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):\d{1,5}$/, 'must be HOST:PORT or [V6]:PORT');

export const strategies = ['round-robin', 'weighted', 'least-outstanding', 'latency', 'gpu', 'prefix'] as const;

/** The region's balancer: the reverse proxy in front of its GPU model servers (`arus balancer --region`). */
export const balancerSchema = z
  .strictObject({
    /**
     * Where the balancer listens: one HOST:PORT or several (one per zone
     * address, say); the region's endpoints point clients here.
     */
    listen: z.union([listenAddress, z.array(listenAddress).min(1).max(16)]).default('127.0.0.1:8000'),
    strategy: z.enum(strategies).default('gpu'),
    instances: z.array(balancerInstanceSchema).min(1, 'a balancer needs at least one instance'),
    maxConcurrentPerInstance: z.number().int().min(1).max(10_000).default(16),
    maxQueue: z.number().int().min(0).max(100_000).default(256),
    queueTimeoutMs: z.number().int().min(0).max(600_000).default(5000),
    slowStartMs: z.number().int().min(0).max(3_600_000).default(30_000),
    /** How often the balancer reports its capacity to control. */
    reportEveryMs: z.number().int().min(100).max(60_000).default(1000),
    /** Micro-batching of embeddings calls, per model pool; off unless set. */
    batching: z
      .strictObject({
        embeddings: z
          .strictObject({
            windowMs: z.number().int().min(1).max(1000).default(5),
            maxBatch: z.number().int().min(2).max(2048).default(32),
          })
          .optional(),
      })
      .optional(),
    /** The `prefix` strategy's settings (ignored by the others). */
    prefix: z
      .strictObject({
        /** The instances' prefill speed, prompt tokens per second (default 20 000: src/sim/README.md says where from). */
        prefillTokensPerSecond: z.number().int().min(100).max(10_000_000).default(20_000),
        /** The prefix index's memory cap, MiB. */
        indexMiB: z.number().int().min(1).max(4096).default(64),
      })
      .optional(),
    /**
     * Passive outlier detection on real requests (src/balancer/pool/outliers.ts); each setting has its
     * default there when left out: 5 failures in a row (with half of the last 20 failed too) eject an
     * instance for 1 s doubling to 30 s, and at most 50 % of the instances (but one) are ejected at once.
     */
    outlier: z
      .strictObject({
        consecutiveFailures: z.number().int().min(1).max(1000).optional(),
        maxEjectionPercent: z.number().int().min(1).max(100).optional(),
        baseEjectionMs: z.number().int().min(1).max(3_600_000).optional(),
        maxEjectionMs: z.number().int().min(1).max(3_600_000).optional(),
      })
      .optional(),
    /** Degrade-to model per model, used when a model's pool is down or full; marked in `x-arus-fallback`. */
    fallbacks: z.record(z.string().min(1), z.string().min(1)).optional(),
    /** Autoscaling per model pool (src/balancer/scale/): instances added when demand grows, drained when it falls. */
    autoscale: z.record(z.string().min(1).max(200), autoscaleSchema).optional(),
    /** Per model pool, off unless set: answers kept for deterministic requests, served marked stale when no instance can serve. */
    staleCache: z.record(z.string().min(1).max(200), staleCacheSchema).optional(),
  })
  .superRefine((b, ctx) => {
    const ids = new Set<string>();
    b.instances.forEach((inst, i) => {
      if (ids.has(inst.id)) ctx.addIssue({ code: 'custom', path: ['instances', i, 'id'], message: `duplicate instance id "${inst.id}"` });
      ids.add(inst.id);
    });
    const models = new Set(b.instances.flatMap((i) => i.models));
    for (const key of ['autoscale', 'staleCache'] as const)
      for (const model of Object.keys(b[key] ?? {}))
        if (!models.has(model)) ctx.addIssue({ code: 'custom', path: [key, model], message: `no instance serves model "${model}": a pool is named by a model some instance lists` });
  });

export const regionSchema = z
  .strictObject({
    id: slug,
    name: z.string().min(1).max(100),
    location: z.strictObject({
      lat: z.number().min(-90).max(90),
      lon: z.number().min(-180).max(180),
    }),
    /** Countries whose clients this region serves first, whatever the distance. */
    countries: z.array(countryCode).default([]),
    down: z.boolean().default(false),
    zones: z.array(availabilityZoneSchema).min(2, 'a region needs two or more availability zones'),
    balancer: balancerSchema.optional(),
  })
  .superRefine((r, ctx) => {
    const seen = new Set<string>();
    r.zones.forEach((zone, i) => {
      if (seen.has(zone.id)) ctx.addIssue({ code: 'custom', path: ['zones', i, 'id'], message: `duplicate zone id "${zone.id}"` });
      seen.add(zone.id);
    });
    const addrs = new Set<string>();
    r.zones.forEach((zone, i) =>
      zone.endpoints.forEach((ep, j) => {
        const name = endpointName(ep);
        const field = ep.address !== undefined ? 'address' : 'hostname';
        if (addrs.has(name)) ctx.addIssue({ code: 'custom', path: ['zones', i, 'endpoints', j, field], message: `duplicate endpoint ${field} ${name}` });
        addrs.add(name);
      }),
    );
  });

/**
 * How a service chooses among its healthy regions: `geo` (nearest to the
 * client), `latency` (lowest measured RTT from near the client), `failover`
 * (the first healthy region of `regions`, in that order) or `weighted` (at
 * random, in proportion to `weights`). The last two ignore where the client is.
 */
export const policies = ['geo', 'latency', 'failover', 'weighted'] as const;
export type Policy = (typeof policies)[number];

/**
 * A service's fields without the checks across them: for building partial
 * (PATCH) bodies. Validate the whole result with `serviceSchema`.
 */
export const serviceFields = z.strictObject({
  name: slug,
  ttl: z.number().int().min(0).max(86_400).default(30),
  policy: z.enum(policies).default('geo'),
  /** When every candidate is down: answer the nearest anyway (open) or with no address (closed). */
  failMode: z.enum(['open', 'closed']).default('open'),
  /** Regions allowed to serve this service; every region when absent. For `failover`, required: the priority order. */
  regions: z.array(slug).optional(),
  /**
   * For `weighted`: each region's share of answers (`{ sg: 70, jkt: 30 }`).
   * A region without a weight, or with 0, serves only when no weighted region is up.
   */
  weights: z.record(slug, z.number().int().min(0).max(65_535)).optional(),
  /** At most this many addresses in one answer. */
  maxAnswers: z.number().int().min(1).max(32).default(8),
});

export const serviceSchema = serviceFields.superRefine((s, ctx) => {
  const seen = new Set<string>();
  s.regions?.forEach((r, i) => {
    if (seen.has(r)) ctx.addIssue({ code: 'custom', path: ['regions', i], message: `duplicate region "${r}"` });
    seen.add(r);
  });
  if (s.policy === 'failover') {
    if (s.regions === undefined)
      ctx.addIssue({ code: 'custom', path: ['regions'], message: 'required for policy failover: the regions in priority order, first choice first' });
    else if (s.regions.length === 0)
      ctx.addIssue({ code: 'custom', path: ['regions'], message: 'policy failover needs at least one region' });
  }
  if (s.policy !== 'weighted') {
    if (s.weights !== undefined)
      ctx.addIssue({ code: 'custom', path: ['weights'], message: `only used by policy weighted (this service's policy is ${s.policy})` });
    return;
  }
  if (s.weights === undefined) {
    ctx.addIssue({ code: 'custom', path: ['weights'], message: 'required for policy weighted: a share per region, such as { sg: 70, jkt: 30 }' });
    return;
  }
  if (!Object.values(s.weights).some((w) => w > 0))
    ctx.addIssue({ code: 'custom', path: ['weights'], message: 'at least one region needs a weight above 0' });
  if (s.regions !== undefined)
    for (const key of Object.keys(s.weights))
      if (!s.regions.includes(key))
        ctx.addIssue({ code: 'custom', path: ['weights', key], message: `"${key}" is not one of this service's regions (${s.regions.join(', ') || 'none'})` });
});

const netTarget = z.union([
  z.strictObject({ region: slug }),
  z.strictObject({ country: countryCode }),
]);

export const nameServerSchema = z.strictObject({
  name: hostname,
  /** Glue: required when the name server is inside the zone. */
  addresses: z.array(ipAddress).default([]),
});

/**
 * Response rate limiting (RRL, as in BIND and Knot): UDP replies per client
 * network (the source address's /24 or /56; ECS does not count, it is not
 * where the reply goes) and per kind of reply (answer, NXDOMAIN, error), in a
 * token bucket that holds one second's worth. Over the limit, every `slip`-th
 * reply goes out empty with TC set (a real resolver retries over TCP, which is
 * never limited) and the others are dropped. Absent: enabled with these defaults.
 */
export const rrlSchema = z.strictObject({
  enabled: z.boolean().default(RRL_DEFAULTS.enabled),
  /**
   * Answers (NOERROR, with data or NODATA) per second per client network. 100:
   * a large resolver forwarding ECS asks once per client subnet, so one of its
   * /24s legitimately sends far more than a plain resolver; at ~200 octets a
   * reply that is still only ~20 kB/s towards a spoofed victim network.
   */
  responsesPerSecond: z.number().int().min(1).max(1_000_000).default(RRL_DEFAULTS.responsesPerSecond),
  /** NXDOMAIN replies per second per client network (random-subdomain floods). */
  nxdomainsPerSecond: z.number().int().min(1).max(1_000_000).default(RRL_DEFAULTS.nxdomainsPerSecond),
  /** Error replies (REFUSED, FORMERR, NOTIMP, BADVERS, SERVFAIL) per second per client network. */
  errorsPerSecond: z.number().int().min(1).max(1_000_000).default(RRL_DEFAULTS.errorsPerSecond),
  /** Over the limit, every slip-th reply is sent truncated (TC=1, no records), the rest dropped; 0: drop all, 1: truncate all. */
  slip: z.number().int().min(0).max(10).default(RRL_DEFAULTS.slip),
  ipv4PrefixLength: z.number().int().min(8).max(32).default(RRL_DEFAULTS.ipv4PrefixLength),
  ipv6PrefixLength: z.number().int().min(16).max(64).default(RRL_DEFAULTS.ipv6PrefixLength),
  /** Client networks tracked at once; past it, idle ones (full buckets) are forgotten, then the oldest. */
  maxTableSize: z.number().int().min(100).max(10_000_000).default(RRL_DEFAULTS.maxTableSize),
  /** Clients never limited. Loopback by default: a spoofed loopback source cannot arrive from outside. */
  exempt: z.array(cidr).default([...RRL_DEFAULTS.exempt]),
});

/**
 * DNSSEC (src/dnssec/): how the zone is signed once `arus dnssec init` made
 * its keys, and the timings of its rollovers (RFC 7583).
 */
export const dnssecSchema = z.strictObject({
  /**
   * The DNS nodes (the node id their dns credential is bound to) that get the
   * ZSK in their snapshots and sign answers; `*` for every dns credential.
   * Control's own responder (`arus up`) always signs.
   */
  signers: z.array(z.string().min(1).max(100)).max(1000).default([]),
  /** TTL of the DNSKEY, CDS and CDNSKEY RRsets (seconds). */
  dnskeyTtl: z.number().int().min(1).max(86_400).default(3600),
  /** How long a ZSK signs before the automatic rollover starts (seconds); 0: never automatically. 30 days. */
  zskLifetime: z.number().int().min(0).default(30 * 86_400),
  /** Dprp (RFC 7583): the time a change takes to reach every node and leave the parent's and resolvers' way, seconds. */
  propagationDelay: z.number().int().min(0).max(86_400).default(300),
  /** The parent's DS TTL: how long the old DS may live in caches once the parent has the new one (KSK rollover). */
  parentDsTtl: z.number().int().min(0).max(7 * 86_400).default(86_400),
});

export const zoneSchema = z
  .strictObject({
    apex: hostname,
    nameservers: z.array(nameServerSchema).min(1, 'a zone needs at least one name server'),
    soa: z
      .strictObject({
        /** Primary name server; the first NS when absent. */
        mname: hostname.optional(),
        /** Responsible mailbox as a domain name (hostmaster.example.com). */
        rname: hostname,
        refresh: z.number().int().min(1).default(3600),
        retry: z.number().int().min(1).default(600),
        expire: z.number().int().min(1).default(604_800),
        /** Negative-caching TTL (RFC 2308). */
        minimum: z.number().int().min(0).max(86_400).default(60),
        ttl: z.number().int().min(0).default(3600),
      }),
    nsTtl: z.number().int().min(0).default(86_400),
    services: z.array(serviceSchema).min(1, 'a zone needs at least one service'),
    /** Region for clients whose location is unknown. */
    defaultRegion: slug,
    /** CIDR overrides, checked before the GeoIP database. */
    nets: z.record(cidr, netTarget).default({}),
    geoip: z
      .strictObject({
        /** Path to a MaxMind (GeoLite2/GeoIP2 City or Country) or DB-IP .mmdb file. */
        database: z.string().min(1).optional(),
      })
      .default({}),
    /** Response rate limiting of UDP replies; see `rrlSchema`. Enabled with its defaults when absent. */
    rrl: rrlSchema.optional(),
    /** Static records served as written beside the steered names, one entry per RRset (see config/records.ts). */
    records: z.array(recordSchema).max(10_000).optional(),
    /** Signing settings; the zone is signed once it has keys (`arus dnssec init`). */
    dnssec: dnssecSchema.optional(),
  })
  .superRefine((zone, ctx) => {
    zone.nameservers.forEach((ns, i) => {
      const inZone = ns.name === zone.apex || ns.name.endsWith(`.${zone.apex}`);
      if (inZone && ns.addresses.length === 0)
        ctx.addIssue({ code: 'custom', path: ['nameservers', i, 'addresses'], message: `${ns.name} is inside ${zone.apex} and needs glue addresses` });
    });
    const nets = new Map<string, string>();
    for (const key of Object.keys(zone.nets)) {
      const other = nets.get(networkKey(key));
      if (other) ctx.addIssue({ code: 'custom', path: ['nets', key], message: `the same network as "${other}"` });
      nets.set(networkKey(key), key);
    }
    const names = new Set<string>();
    zone.services.forEach((s, i) => {
      if (names.has(s.name)) ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service "${s.name}"` });
      names.add(s.name);
    });
    checkRecords(zone, ctx);
  });

export type Check = z.infer<typeof checkSchema>;
export type EndpointDoc = z.infer<typeof endpointSchema>;
export type AvailabilityZoneDoc = z.infer<typeof availabilityZoneSchema>;
export type RegionDoc = z.infer<typeof regionSchema>;
export type BalancerDoc = z.infer<typeof balancerSchema>;
export type RegionInput = z.input<typeof regionSchema>;
export type ServiceDoc = z.infer<typeof serviceSchema>;
export type ZoneDoc = z.infer<typeof zoneSchema>;
export type ZoneInput = z.input<typeof zoneSchema>;
export type RrlDoc = z.infer<typeof rrlSchema>;
export type DnssecDoc = z.infer<typeof dnssecSchema>;
export type { RecordDoc, RecordInput } from './records.js';

/** The whole configuration: one zone and its regions. */
export type Config = { zone: ZoneDoc; regions: RegionDoc[] };

/** Checks that hold across documents (what a single document cannot know). */
export function crossCheck(config: Config): string[] {
  const errors: string[] = [];
  const ids = new Set<string>();
  config.regions.forEach((r, i) => {
    if (ids.has(r.id)) errors.push(`regions[${i}].id: duplicate region "${r.id}"`);
    ids.add(r.id);
  });
  if (!ids.has(config.zone.defaultRegion)) errors.push(`zone.defaultRegion: no region "${config.zone.defaultRegion}"`);
  for (const [net, target] of Object.entries(config.zone.nets))
    if ('region' in target && !ids.has(target.region)) errors.push(`zone.nets["${net}"].region: no region "${target.region}"`);
  config.zone.services.forEach((s, i) => {
    for (const r of s.regions ?? []) if (!ids.has(r)) errors.push(`zone.services[${i}].regions: no region "${r}"`);
    for (const r of Object.keys(s.weights ?? {})) if (!ids.has(r)) errors.push(`zone.services[${i}].weights: no region "${r}"`);
  });
  errors.push(...pinnedCollisions(config.zone, [...ids]));
  return errors;
}

/** The addresses a balancer document says to listen on. */
export function balancerListen(doc: Pick<BalancerDoc, 'listen'>): { address: string; port: number }[] {
  return (Array.isArray(doc.listen) ? doc.listen : [doc.listen]).map((l) => {
    const i = l.lastIndexOf(':');
    const host = l.slice(0, i).replace(/^\[|\]$/g, '');
    return { address: host === 'localhost' ? '127.0.0.1' : host, port: Number(l.slice(i + 1)) };
  });
}
