// The composition root: parses the command line and wires the components.
// Everything else receives its dependencies.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadDocuments } from './config/load.js';
import { seedIfEmpty } from './config/seed.js';
import { createStore, openDatabase, type Store } from './db/store.js';
import { createResponder } from './dns/responder.js';
import { createDnsServer, type ListenAddress } from './dns/server.js';
import { explainQuery, ExplainError, formatExplanation, loadState } from './explain.js';
import { createLogger, type Logger } from './log.js';
import { createDbStateSource } from './snapshot/source.js';

const DEFAULTS = {
  db: process.env.ARUS_DB ?? './data/arus.db',
  regions: process.env.ARUS_REGIONS ?? './regions',
  dnsListen: process.env.ARUS_DNS_LISTEN ?? '127.0.0.1:5300,[::1]:5300',
};

type Command = {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Record<string, string | boolean | undefined>; positionals: string[] }, log: Logger): Promise<void> | void;
};

const dbOption = { db: { type: 'string', default: DEFAULTS.db } } as const;
const listenOption = { 'dns-listen': { type: 'string', default: DEFAULTS.dnsListen } } as const;

const commands: Record<string, Command> = {
  up: {
    summary: 'run every role in one process (the embedded default `npm start` runs)',
    usage: `arus up [--db FILE] [--regions DIR] [--dns-listen ADDR:PORT,...]

  --db FILE          SQLite database (default ${DEFAULTS.db}; ARUS_DB)
  --regions DIR      YAML documents that seed an empty database (default ${DEFAULTS.regions}; ARUS_REGIONS)
  --dns-listen LIST  UDP+TCP listen addresses (default ${DEFAULTS.dnsListen}; ARUS_DNS_LISTEN)`,
    options: { ...dbOption, ...listenOption, regions: { type: 'string', default: DEFAULTS.regions } },
    async run({ values }, log) {
      const store = openStore(String(values.db));
      const seeded = seedIfEmpty(store, String(values.regions));
      if (seeded) log.info({ regions: values.regions, version: seeded.version }, 'empty database seeded');
      await serveDns(store, String(values['dns-listen']), log);
    },
  },
  dns: {
    summary: 'run the authoritative DNS responder, answering from the database',
    usage: `arus dns [--db FILE] [--dns-listen ADDR:PORT,...]

  Answers from the configuration in the database and picks up every change
  (\`arus apply\`) within a second, without a restart.

  --db FILE          SQLite database (default ${DEFAULTS.db}; ARUS_DB)
  --dns-listen LIST  UDP+TCP listen addresses (default ${DEFAULTS.dnsListen}; ARUS_DNS_LISTEN)`,
    options: { ...dbOption, ...listenOption },
    async run({ values }, log) {
      await serveDns(openStore(String(values.db)), String(values['dns-listen']), log);
    },
  },
  apply: {
    summary: 'validate YAML documents and upsert them into the database',
    usage: `arus apply <file or folder>... [--db FILE] [--reason TEXT]

  Every document is validated first; if any is invalid nothing is written.
  Unchanged documents are skipped. A running server picks the change up.`,
    options: { ...dbOption, reason: { type: 'string' } },
    run({ values, positionals }) {
      if (positionals.length === 0) throw new UsageError('apply needs at least one file or folder');
      const store = openStore(String(values.db));
      const result = store.apply(loadDocuments(positionals), { actor: 'cli', reason: values.reason as string | undefined });
      console.log(
        result.changed.length
          ? `applied ${result.changed.join(', ')} (config version ${result.version})`
          : `nothing changed (config version ${result.version})`,
      );
    },
  },
  resolve: {
    summary: 'print the decision DNS would give a client, and its trace, without the network',
    usage: `arus resolve <name> --client IP [--ecs SUBNET] [--type A|AAAA] [--db FILE | --config DIR] [--json]

  --client IP     the address the query comes from (a resolver, or the client)
  --ecs SUBNET    an EDNS Client Subnet such as 36.66.0.0/24
  --type TYPE     A (default) or AAAA
  --config DIR    read YAML documents instead of the database`,
    options: {
      ...dbOption,
      client: { type: 'string', default: '127.0.0.1' },
      ecs: { type: 'string' },
      type: { type: 'string', default: 'A' },
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    run({ values, positionals }) {
      const [name] = positionals;
      if (!name) throw new UsageError('resolve needs a name, e.g. api.gslb.example.com');
      const type = String(values.type).toUpperCase();
      if (type !== 'A' && type !== 'AAAA') throw new UsageError('--type must be A or AAAA');
      const store = values.config ? undefined : openStore(String(values.db));
      if (store) seedIfEmpty(store, DEFAULTS.regions);
      const state = loadState({ store, docs: values.config ? loadDocuments([String(values.config)]) : undefined });
      const result = explainQuery(state, { name, type, client: String(values.client), ecs: values.ecs as string | undefined });
      console.log(values.json ? JSON.stringify(result, null, 2) : formatExplanation(result));
    },
  },
};

class UsageError extends Error {}

function openStore(file: string): Store {
  return createStore(openDatabase(file));
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

async function serveDns(store: Store, listen: string, log: Logger): Promise<void> {
  const source = createDbStateSource({ store, log: log.child({ component: 'snapshot' }) });
  const responder = createResponder({ getState: source.current, log });
  const server = createDnsServer({ listen: parseListen(listen), responder, log });
  const bound = await server.start();
  const { snapshot } = source.current();
  log.info({ udp: bound.udp, tcp: bound.tcp, apex: snapshot.zone.apex, version: snapshot.version }, 'ready');
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    source.stop();
    await server.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

function help(): string {
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
    console.log(help());
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    console.error(`arus: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${command.summary}\n\nusage: ${command.usage}`);
    return 0;
  }
  const log = createLogger();
  try {
    const args = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    await command.run(args as never, log);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) console.error(`arus ${name}: invalid configuration\n${err.message}`);
    else if (err instanceof ExplainError) console.error(`arus ${name}: ${err.message}`);
    else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      console.error(`arus ${name}: ${(err as Error).message}\n\nusage: ${command.usage}`);
    else console.error(`arus ${name}: ${(err as Error).message}`);
    return (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || err instanceof UsageError ? 2 : 1;
  }
}

const code = await main(process.argv.slice(2));
// Servers keep the process alive; one-shot commands end here.
if (code !== 0) process.exit(code);
