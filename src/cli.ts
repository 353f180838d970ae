// The composition root: parses the command line and wires the components.
// Everything else receives its dependencies. Each command imports what it
// runs when it runs: a DNS node restarted from its disk snapshot does not
// load the API, the database or the balancer first.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ListenAddress } from './dns/server.js';
import { createLogger, type Logger } from './log.js';
import type { Metrics } from './metrics/metrics.js';
import type { Stoppable } from './roles.js';

const env = process.env;
const DEFAULTS = {
  db: env.ARUS_DB ?? './data/arus.db',
  regions: env.ARUS_REGIONS ?? './regions',
  dnsListen: env.ARUS_DNS_LISTEN ?? '127.0.0.1:5300,[::1]:5300',
  apiListen: env.ARUS_API_LISTEN ?? '127.0.0.1:8080',
};

type Values = Record<string, string | boolean | undefined>;
type Command = {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Values; positionals: string[] }, log: Logger): Promise<void> | void;
};

class UsageError extends Error {}

const opt = {
  db: { db: { type: 'string', default: DEFAULTS.db } },
  dns: { 'dns-listen': { type: 'string', default: DEFAULTS.dnsListen } },
  api: { 'api-listen': { type: 'string', default: DEFAULTS.apiListen } },
  regions: { regions: { type: 'string', default: DEFAULTS.regions } },
} as const;

const help = {
  db: `  --db FILE           SQLite database (default ${DEFAULTS.db}; ARUS_DB)`,
  regions: `  --regions DIR       YAML documents that seed an empty database (default ${DEFAULTS.regions}; ARUS_REGIONS)`,
  dns: `  --dns-listen LIST   DNS UDP+TCP listen addresses (default ${DEFAULTS.dnsListen}; ARUS_DNS_LISTEN)`,
  api: `  --api-listen ADDR   admin API listen address (default ${DEFAULTS.apiListen}; ARUS_API_LISTEN)`,
};

const commands: Record<string, Command> = {
  up: {
    summary: 'run every role in one process (the embedded default `npm start` runs)',
    usage: `arus up [options]

  control (admin API), DNS, one probe agent per region, the balancer of every
  region with a balancer section and — unless --sim off — a simulated model
  server on every loopback balancer instance and health-check target.

${help.db}
${help.regions}
${help.dns}
${help.api}
  --sim auto|off      start simulated model servers for loopback instances and check targets (default auto)
  --probe-interval MS probe interval (default 500)`,
    options: { ...opt.db, ...opt.regions, ...opt.dns, ...opt.api, sim: { type: 'string', default: 'auto' }, 'probe-interval': { type: 'string' } },
    async run({ values }, log) {
      const [{ createMetrics }, { seedIfEmpty }, { startBalancer }, roles] = await Promise.all([
        import('./metrics/metrics.js'),
        import('./config/seed.js'),
        import('./balancer/role.js'),
        import('./roles.js'),
      ]);
      const { internalToken, simTargets, startControl, startDns, startProbes, startSims, staticTokensFrom } = roles;
      const metrics = createMetrics();
      const { db, store, healthStore } = await openStores(String(values.db), metrics);
      const seeded = seedIfEmpty(store, String(values.regions));
      if (seeded) log.info({ regions: values.regions, version: seeded.version }, 'empty database seeded');
      const parts: Stoppable[] = [];
      if (values.sim !== 'off') {
        if (values.sim !== 'auto') throw new UsageError('--sim must be auto or off');
        parts.push(await startSims({ listen: simTargets(store.getConfig()!), log }));
      }
      const probeToken = internalToken();
      const control = await startControl({
        ...controlOptions(values, env),
        db,
        store,
        healthStore,
        log,
        staticTokens: staticTokensFrom(env, [{ token: probeToken, role: 'probe', name: 'in-process probes' }]),
        // The demo runs on loopback: its status page opens without a token there (ARUS_STATUS_OPEN=false to require one).
        status: { open: env.ARUS_STATUS_OPEN !== 'false' },
        metrics,
      });
      parts.push(control);
      const dns = await startDns({ getState: control.control.current, listen: parseListen(String(values['dns-listen'])), log, metrics });
      parts.push(dns);
      const balancers: Record<string, number> = {};
      for (const r of store.getConfig()!.regions.filter((x) => x.balancer)) {
        const b = await startBalancer({ region: r.id, id: `balancer-${r.id}`, doc: r.balancer!, log: log.child({ component: 'balancer', region: r.id }), report: (c) => control.control.reportCapacity({ ...c, at: Date.now() }) });
        balancers[r.id] = b.port;
        parts.push(b);
      }
      const regions = store.getConfig()!.regions.map((r) => r.id);
      parts.push(await startProbes({ regions, controlUrl: control.url, token: probeToken, log, intervalMs: intOption(values['probe-interval'], 'probe-interval') }));
      log.info({ udp: dns.bound.udp, tcp: dns.bound.tcp, api: control.url, balancers, adminToken: env.ARUS_ADMIN_TOKEN ? 'from ARUS_ADMIN_TOKEN' : 'none set: the API accepts no admin' }, 'ready');
      onSignal(parts, log);
    },
  },
  control: {
    summary: 'run the control plane: admin API, health tracker, history',
    usage: `arus control [options]

  Needs ARUS_ADMIN_TOKEN (admin) and ARUS_PROBE_TOKEN (probe agents) in the
  environment; ARUS_DNS_TOKEN, if set, is a token DNS nodes may use (dns role).

${help.db}
${help.regions}
${help.api}`,
    options: { ...opt.db, ...opt.regions, ...opt.api },
    async run({ values }, log) {
      const [{ createMetrics }, { seedIfEmpty }, { startControl, staticTokensFrom }] = await Promise.all([
        import('./metrics/metrics.js'),
        import('./config/seed.js'),
        import('./roles.js'),
      ]);
      const metrics = createMetrics();
      const { db, store, healthStore } = await openStores(String(values.db), metrics);
      seedIfEmpty(store, String(values.regions));
      const control = await startControl({ ...controlOptions(values, env), db, store, healthStore, log, staticTokens: staticTokensFrom(env), status: { open: env.ARUS_STATUS_OPEN === 'true' }, metrics });
      log.info({ api: control.url }, 'ready');
      onSignal([control], log);
    },
  },
  dns: {
    summary: "run the authoritative DNS responder, answering from control's snapshots",
    usage: `arus dns --control URL --token TOKEN [--snapshot FILE] [options]
       arus dns --db FILE [options]

  With --control: follows the snapshots control streams, validates each before
  swapping it in whole (a bad one is refused and the old one kept), and writes
  the last good one to --snapshot. A restart answers from that file at once,
  control up or not, and the node answers from it for as long as control is
  away, reconnecting with back-off; control records the gap when it is back.
  With --db: reads the configuration and health control writes to its SQLite
  file on the same machine, and picks up every change within a second.

  --control URL           control's API, e.g. http://10.0.0.5:8080
  --token TOKEN           a dns token (arus token create --role dns), or ARUS_DNS_TOKEN
  --snapshot FILE         the last good snapshot (default ./data/dns-snapshot.json; ARUS_SNAPSHOT)
  --id NAME               this node's name in control's history (default dns-<host name>)
  --db FILE               the database, instead of --control (default ${DEFAULTS.db}; ARUS_DB)
${help.dns}
  --metrics-listen ADDR   Prometheus /metrics (default 127.0.0.1:9153; ARUS_METRICS_LISTEN)`,
    options: {
      control: { type: 'string' },
      token: { type: 'string' },
      snapshot: { type: 'string', default: env.ARUS_SNAPSHOT ?? './data/dns-snapshot.json' },
      id: { type: 'string' },
      db: { type: 'string' },
      ...opt.dns,
      'metrics-listen': { type: 'string', default: env.ARUS_METRICS_LISTEN ?? '127.0.0.1:9153' },
    },
    async run({ values }, log) {
      const [{ createMetrics }, { startDns, startMetricsServer }] = await Promise.all([import('./metrics/metrics.js'), import('./roles.js')]);
      const metrics = createMetrics();
      const controlUrl = values.control as string | undefined;
      let source: { current: import('./snapshot/source.js').StateSource['current']; stop(): unknown };
      let origin: Record<string, unknown>;
      if (controlUrl) {
        const token = (values.token as string | undefined) ?? env.ARUS_DNS_TOKEN;
        if (values.db) throw new UsageError('dns takes --control or --db, not both');
        if (!token) throw new UsageError('dns --control needs --token (or ARUS_DNS_TOKEN)');
        // Only this mode needs them.
        const { createControlStateSource } = await import('./snapshot/control-source.js');
        const { createSnapshotFile } = await import('./snapshot/file.js');
        const { observeControlSource } = await import('./snapshot/metrics.js');
        const file = String(values.snapshot);
        const control = createControlStateSource({
          url: controlUrl,
          token,
          node: values.id as string | undefined,
          file: createSnapshotFile(file),
          log: log.child({ component: 'snapshot' }),
        });
        observeControlSource(metrics.registry, control);
        // From the file at once; without one, when control sends its first snapshot.
        await control.ready();
        source = control;
        origin = { control: controlUrl, snapshot: file, from: control.stats().from };
      } else {
        const db = String(values.db ?? DEFAULTS.db);
        const { store, healthStore } = await openStores(db);
        const { createDbStateSource } = await import('./snapshot/source.js');
        source = createDbStateSource({ store, healthStore, log: log.child({ component: 'snapshot' }) });
        origin = { db };
      }
      const dns = await startDns({ getState: source.current, listen: parseListen(String(values['dns-listen'])), log, metrics });
      const metricsServer = await startMetricsServer({ metrics, listen: parseListen(String(values['metrics-listen']))[0] });
      log.info({ udp: dns.bound.udp, tcp: dns.bound.tcp, metrics: metricsServer.url, version: source.current().snapshot.version, ...origin }, 'ready');
      onSignal([{ stop: async () => void (await source.stop()) }, dns, metricsServer], log);
    },
  },
  probe: {
    summary: 'run a probe agent: check every endpoint, report to control',
    usage: `arus probe --region ID --control URL --token TOKEN [--id NAME] [--interval MS]

  --region ID     the region this agent runs in (its vantage point)
  --control URL   control's API, e.g. http://127.0.0.1:8080
  --token TOKEN   a probe (or admin) token (or ARUS_PROBE_TOKEN)
  --id NAME       agent name (default probe-<region>-<host pid>)
  --interval MS   time between rounds (default 500, jittered ±20 %)`,
    options: { region: { type: 'string' }, control: { type: 'string' }, token: { type: 'string' }, id: { type: 'string' }, interval: { type: 'string' } },
    async run({ values }, log) {
      const region = values.region as string | undefined;
      const controlUrl = values.control as string | undefined;
      const token = (values.token as string | undefined) ?? env.ARUS_PROBE_TOKEN;
      if (!region || !controlUrl || !token) throw new UsageError('probe needs --region, --control and --token');
      const { createProbeAgent } = await import('./probe/agent.js');
      const agent = createProbeAgent({
        id: (values.id as string | undefined) ?? `probe-${region}-${process.pid}`,
        region,
        controlUrl,
        token,
        intervalMs: intOption(values.interval, 'interval'),
        log,
      });
      agent.start();
      log.info({ region, control: controlUrl }, 'ready');
      onSignal([agent], log);
    },
  },
  balancer: {
    summary: "run a region's balancer: the reverse proxy in front of its GPU model servers",
    usage: `arus balancer --region ID --control URL --token TOKEN [--id NAME] [--listen ADDR:PORT]

  Reads the region's balancer section from control, proxies to its instances
  with the configured strategy, and reports its capacity to control.

  --region ID     the region whose balancer this is
  --control URL   control's API, e.g. http://127.0.0.1:8080
  --token TOKEN   a probe (or admin) token (or ARUS_PROBE_TOKEN)
  --listen ADDR   override the document's listen address`,
    options: { region: { type: 'string' }, control: { type: 'string' }, token: { type: 'string' }, id: { type: 'string' }, listen: { type: 'string' } },
    async run({ values }, log) {
      const region = values.region as string | undefined;
      const controlUrl = (values.control as string | undefined)?.replace(/\/$/, '');
      const token = (values.token as string | undefined) ?? env.ARUS_PROBE_TOKEN;
      if (!region || !controlUrl || !token) throw new UsageError('balancer needs --region, --control and --token');
      const [{ balancerSchema }, { startBalancer }] = await Promise.all([import('./config/schema.js'), import('./balancer/role.js')]);
      const headers = { authorization: `Bearer ${token}` };
      const res = await fetch(`${controlUrl}/v1/balancers/${encodeURIComponent(region)}`, { headers });
      if (!res.ok) throw new Error(`control answered ${res.status} for the balancer of ${region}: ${await res.text()}`);
      const doc = balancerSchema.parse(await res.json());
      const id = (values.id as string | undefined) ?? `balancer-${region}-${process.pid}`;
      const balancer = await startBalancer({
        region,
        id,
        doc,
        log: log.child({ component: 'balancer', region }),
        listen: values.listen ? parseListen(String(values.listen))[0] : undefined,
        report: async (r) => {
          const answer = await fetch(`${controlUrl}/v1/capacity`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(r), signal: AbortSignal.timeout(2000) });
          await answer.body?.cancel();
        },
      });
      log.info({ region, port: balancer.port, strategy: doc.strategy, instances: doc.instances.length }, 'ready');
      onSignal([balancer], log);
    },
  },
  sim: {
    summary: 'run simulated OpenAI-compatible GPU model servers',
    usage: `arus sim (--listen ADDR:PORT,... | --regions DIR) [options]

  --listen LIST              addresses to serve on
  --regions DIR              serve every loopback HTTP health-check target in these documents
  --model NAME               model served (default llama-3-8b)
  --warmup-ms MS             time before /health answers 200 and the model is listed (default 0)
  --ttft-ms MS               time to first token (default 100)
  --tokens-per-second N      decode speed per sequence (default 50)
  --max-running N            sequences at once before requests queue (default 16)
  --batch-knee N             sequences decoded at full speed; more share it (default: max-running)
  --kv-cache-tokens N        KV-cache size (default 32768)
  --kinds LIST               chat,completion,embeddings (default all)
  --embed-call-ms MS         cost of one embeddings call (default 20)
  --embed-per-input-ms MS    added cost per input (default 1)
  --gpu-memory-gib N         device memory reported (default 80)

  Faults (crash, hang, slow, error, oom) are set with POST /admin/fault.`,
    options: {
      listen: { type: 'string' },
      regions: { type: 'string' },
      model: { type: 'string' },
      'warmup-ms': { type: 'string' },
      'ttft-ms': { type: 'string' },
      'tokens-per-second': { type: 'string' },
      'max-running': { type: 'string' },
      'batch-knee': { type: 'string' },
      'kv-cache-tokens': { type: 'string' },
      kinds: { type: 'string' },
      'embed-call-ms': { type: 'string' },
      'embed-per-input-ms': { type: 'string' },
      'gpu-memory-gib': { type: 'string' },
    },
    async run({ values }, log) {
      const [{ loadDocuments }, { simTargets, startSims }] = await Promise.all([import('./config/load.js'), import('./roles.js')]);
      const listen = values.listen
        ? parseListen(String(values.listen))
        : values.regions
          ? simTargets(loadDocuments([String(values.regions)]))
          : undefined;
      if (!listen?.length) throw new UsageError('sim needs --listen or --regions');
      const kinds = values.kinds === undefined ? undefined : String(values.kinds).split(',').map((k) => k.trim());
      if (kinds?.some((k) => !['chat', 'completion', 'embeddings'].includes(k))) throw new UsageError('--kinds takes chat, completion and embeddings');
      const gib = intOption(values['gpu-memory-gib'], 'gpu-memory-gib');
      const sims = await startSims({
        listen,
        log,
        model: values.model as string | undefined,
        warmupMs: intOption(values['warmup-ms'], 'warmup-ms'),
        sim: {
          ttftMs: intOption(values['ttft-ms'], 'ttft-ms'),
          tokensPerSecond: intOption(values['tokens-per-second'], 'tokens-per-second'),
          maxRunning: intOption(values['max-running'], 'max-running'),
          batchKnee: intOption(values['batch-knee'], 'batch-knee'),
          kvCacheTokens: intOption(values['kv-cache-tokens'], 'kv-cache-tokens'),
          kinds: kinds as ('chat' | 'completion' | 'embeddings')[] | undefined,
          embedCallMs: intOption(values['embed-call-ms'], 'embed-call-ms'),
          embedPerInputMs: intOption(values['embed-per-input-ms'], 'embed-per-input-ms'),
          gpuMemoryBytes: gib === undefined ? undefined : gib * 2 ** 30,
        },
      });
      log.info({ servers: sims.sims.map((s) => s.port) }, 'ready');
      onSignal([sims], log);
    },
  },
  apply: {
    summary: 'validate YAML documents and upsert them into the database',
    usage: `arus apply <file or folder>... [--db FILE] [--reason TEXT]

  Every document is validated first; if any is invalid nothing is written.
  Unchanged documents are skipped. A running server picks the change up.`,
    options: { ...opt.db, reason: { type: 'string' } },
    async run({ values, positionals }) {
      if (positionals.length === 0) throw new UsageError('apply needs at least one file or folder');
      const { loadDocuments } = await import('./config/load.js');
      const { store } = await openStores(String(values.db));
      const result = store.apply(loadDocuments(positionals), { actor: 'cli', reason: values.reason as string | undefined });
      console.log(result.changed.length ? `applied ${result.changed.join(', ')} (config version ${result.version})` : `nothing changed (config version ${result.version})`);
    },
  },
  drain: {
    summary: 'take a region, zone or endpoint out of answers (force down), with a reason',
    usage: `arus drain <region:ID | zone:REGION/ZONE | endpoint:REGION/ZONE/ADDRESS> --reason TEXT [--db FILE]
       arus drain <subject> --force-up --reason TEXT   (force up whatever probes say)`,
    options: { ...opt.db, reason: { type: 'string' }, 'force-up': { type: 'boolean', default: false } },
    async run({ values, positionals }) {
      const [subject] = positionals;
      if (!subject || !values.reason) throw new UsageError('drain needs a subject and --reason');
      const { setOverride } = await import('./control/overrides.js');
      const r = setOverride(await openStores(String(values.db)), { subject, mode: values['force-up'] ? 'force-up' : 'drain', reason: String(values.reason), actor: 'cli' });
      console.log(r.changed ? `${values['force-up'] ? 'forced up' : 'drained'} ${subject}` : `${subject} was already so`);
    },
  },
  undrain: {
    summary: 'lift a drain or force-up',
    usage: `arus undrain <subject> [--reason TEXT] [--db FILE]`,
    options: { ...opt.db, reason: { type: 'string', default: 'undrained' } },
    async run({ values, positionals }) {
      const [subject] = positionals;
      if (!subject) throw new UsageError('undrain needs a subject');
      const { setOverride } = await import('./control/overrides.js');
      const r = setOverride(await openStores(String(values.db)), { subject, mode: 'none', reason: String(values.reason), actor: 'cli' });
      console.log(r.changed ? `undrained ${subject}` : `${subject} had no override`);
    },
  },
  token: {
    summary: 'create, list and revoke API tokens (stored hashed)',
    usage: `arus token create --role admin|viewer|probe|dns [--name NAME] [--db FILE]
       arus token list [--db FILE]
       arus token revoke ID [--db FILE]

  The bootstrap admin token comes from ARUS_ADMIN_TOKEN; these are the others.`,
    options: { ...opt.db, role: { type: 'string' }, name: { type: 'string' } },
    async run({ values, positionals }) {
      const [verb, id] = positionals;
      const { tokenCreate, tokenList, tokenRevoke } = await import('./tokens-cli.js');
      const { db } = await openStores(String(values.db));
      if (verb === 'create') console.log(tokenCreate(db, { role: values.role as string | undefined, name: values.name as string | undefined }));
      else if (verb === 'list') console.log(tokenList(db));
      else if (verb === 'revoke' && id) console.log(tokenRevoke(db, id));
      else throw new UsageError('token needs create, list or revoke ID');
    },
  },
  events: {
    summary: 'print the history: failovers, health transitions, drains, config writes',
    usage: `arus events [--since 1h] [--until TIME] [--region ID] [--kind KIND] [--limit N] [--json] [--db FILE]

  --since, --until   a duration back from now (90s, 15m, 1h, 2d) or an ISO time
  --kind             e.g. failover, failback, endpoint.down, region.down, drain, fleet.blind`,
    options: { ...opt.db, since: { type: 'string' }, until: { type: 'string' }, region: { type: 'string' }, kind: { type: 'string' }, limit: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } },
    async run({ values }) {
      const { formatEvents, parseSince } = await import('./events-cli.js');
      const { store } = await openStores(String(values.db));
      const events = store
        .listEvents({
          limit: intOption(values.limit, 'limit'),
          since: values.since ? parseSince(String(values.since), Date.now()) : undefined,
          until: values.until ? parseSince(String(values.until), Date.now()) : undefined,
          region: values.region as string | undefined,
          kind: values.kind as string | undefined,
        })
        .reverse();
      console.log(values.json ? JSON.stringify(events, null, 2) : formatEvents(events));
    },
  },
  resolve: {
    summary: 'print the decision DNS would give a client, and its trace, without the network',
    usage: `arus resolve <name> --client IP [--ecs SUBNET] [--type A|AAAA] [--db FILE | --config DIR] [--json]

  --client IP     the address the query comes from (a resolver, or the client)
  --ecs SUBNET    an EDNS Client Subnet such as 36.66.0.0/24
  --type TYPE     A (default) or AAAA
  --config DIR    read YAML documents instead of the database (no live health)`,
    options: {
      ...opt.db,
      client: { type: 'string', default: '127.0.0.1' },
      ecs: { type: 'string' },
      type: { type: 'string', default: 'A' },
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    async run({ values, positionals }) {
      const [name] = positionals;
      if (!name) throw new UsageError('resolve needs a name, e.g. api.gslb.example.com');
      const type = String(values.type).toUpperCase();
      if (type !== 'A' && type !== 'AAAA') throw new UsageError('--type must be A or AAAA');
      const [{ loadDocuments }, { seedIfEmpty }, { explainQuery, formatExplanation, loadState }] = await Promise.all([
        import('./config/load.js'),
        import('./config/seed.js'),
        import('./explain.js'),
      ]);
      const stores = values.config ? undefined : await openStores(String(values.db));
      if (stores) seedIfEmpty(stores.store, DEFAULTS.regions);
      const state = loadState({ ...stores, docs: values.config ? loadDocuments([String(values.config)]) : undefined });
      const result = explainQuery(state, { name, type, client: String(values.client), ecs: values.ecs as string | undefined });
      console.log(values.json ? JSON.stringify(result, null, 2) : formatExplanation(result));
    },
  },
};

async function openStores(file: string, metrics?: Metrics) {
  const [{ openDatabase }, { createStore }, { createHealthStore }, { configRules }] = await Promise.all([
    import('./db/database.js'),
    import('./db/store.js'),
    import('./db/health-store.js'),
    import('./config/rules.js'),
  ]);
  const db = openDatabase(file);
  return { db, store: createStore(db, { rules: configRules, onEvent: metrics && ((e) => metrics.recordEvent(e.kind)) }), healthStore: createHealthStore(db) };
}

/** What `arus up` and `arus control` give control alike: where the API listens, and whether /metrics needs a token. */
function controlOptions(values: Values, env: NodeJS.ProcessEnv) {
  return { listen: parseListen(String(values['api-listen']))[0], open: { metrics: env.ARUS_METRICS_OPEN !== 'false' } };
}

function intOption(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number`);
  return n;
}

/** `127.0.0.1:5300,[::1]:5300` → listen addresses. */
export function parseListen(list: string): ListenAddress[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(item);
      if (!m || Number(m[3]) > 65535) throw new UsageError(`bad listen address "${item}": use HOST:PORT or [V6]:PORT`);
      return { address: m[1] ?? m[2], port: Number(m[3]) };
    });
}

function onSignal(parts: Stoppable[], log: Logger): void {
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    for (const p of [...parts].reverse()) await p.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return `arus — geo-DNS traffic steering for AI inference in Southeast Asia

usage: arus <command> [options]   (arus <command> --help for details)

${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  .join('\n')}
`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    console.error(`arus: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${command.summary}\n\nusage: ${command.usage}`);
    return 0;
  }
  const log = createLogger();
  try {
    const args = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    await command.run(args as { values: Values; positionals: string[] }, log);
    return 0;
  } catch (err) {
    const parseError = (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    // Errors are rare: their classes are loaded only to tell them apart.
    const [{ ConfigError }, { ExplainError }, { OverrideError }, { TokenError }] = await Promise.all([
      import('./config/load.js'),
      import('./explain.js'),
      import('./control/overrides.js'),
      import('./tokens-cli.js'),
    ]);
    if (err instanceof ConfigError) console.error(`arus ${name}: invalid configuration\n${err.message}`);
    else if (err instanceof UsageError || parseError) console.error(`arus ${name}: ${(err as Error).message}\n\nusage: ${command.usage}`);
    else if (err instanceof ExplainError || err instanceof OverrideError || err instanceof TokenError) console.error(`arus ${name}: ${err.message}`);
    else console.error(`arus ${name}: ${(err as Error).message}`);
    return err instanceof UsageError || parseError ? 2 : 1;
  }
}

const code = await main(process.argv.slice(2));
// Servers keep the process alive; one-shot commands end here.
if (code !== 0) process.exit(code);
