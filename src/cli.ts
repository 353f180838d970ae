// The composition root's entry: the command table, the top-level usage, the
// parsing of the command line and the mapping of errors to exit codes. Each
// command lives in src/cli/ and is imported when it runs, and imports what it
// runs then: a DNS node restarted from its disk snapshot does not load the
// API, the database or the balancer first, and `arus --help` loads no command.
import { parseArgs } from 'node:util';
import type { Command, Values } from './cli/command.js';
import { createLogger } from './log.js';

type Entry = { summary: string; load(): Promise<Command> };

const commands: Record<string, Entry> = {
  up: {
    summary: 'run every role in one process (the embedded default `npm start` runs)',
    load: async () => (await import('./cli/up.js')).upCommand,
  },
  control: {
    summary: 'run the control plane: admin API, health tracker, history',
    load: async () => (await import('./cli/control.js')).controlCommand,
  },
  dns: {
    summary: "run the authoritative DNS responder, answering from control's snapshots",
    load: async () => (await import('./cli/dns.js')).dnsCommand,
  },
  probe: {
    summary: 'run a probe agent: check every endpoint, report to control',
    load: async () => (await import('./cli/probe.js')).probeCommand,
  },
  balancer: {
    summary: "run a region's balancer: the reverse proxy in front of its GPU model servers",
    load: async () => (await import('./cli/balancer.js')).balancerCommand,
  },
  sim: {
    summary: 'run simulated OpenAI-compatible GPU model servers',
    load: async () => (await import('./cli/sim.js')).simCommand,
  },
  apply: {
    summary: 'validate YAML documents and upsert them into the database',
    load: async () => (await import('./cli/apply.js')).applyCommand,
  },
  drain: {
    summary: 'take a region, zone or endpoint out of answers (force down), with a reason',
    load: async () => (await import('./cli/drain.js')).drainCommand,
  },
  undrain: {
    summary: 'lift a drain or force-up',
    load: async () => (await import('./cli/drain.js')).undrainCommand,
  },
  token: {
    summary: 'create, list and revoke API tokens (stored hashed)',
    load: async () => (await import('./cli/token.js')).tokenCommand,
  },
  tsig: {
    summary: 'create, list and revoke TSIG keys for RFC 2136 dynamic updates (stored encrypted)',
    load: async () => (await import('./cli/tsig.js')).tsigCommand,
  },
  dnssec: {
    summary: 'make and list the zone\'s DNSSEC keys, and print the DS record for the parent',
    load: async () => (await import('./cli/dnssec.js')).dnssecCommand,
  },
  certs: {
    summary: 'make a small CA with server and client certificates for a lab (TLS and mutual TLS)',
    load: async () => (await import('./cli/certs.js')).certsCommand,
  },
  events: {
    summary: 'print the history: failovers, health transitions, drains, config writes',
    load: async () => (await import('./cli/events.js')).eventsCommand,
  },
  resolve: {
    summary: 'print the decision DNS would give a client, and its trace, without the network',
    load: async () => (await import('./cli/resolve.js')).resolveCommand,
  },
};

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
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!entry) {
    console.error(`arus: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${entry.summary}\n\nusage: ${command.usage}`);
    return 0;
  }
  const log = createLogger();
  try {
    const args = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    await command.run(args as { values: Values; positionals: string[] }, log);
    return 0;
  } catch (err) {
    return report(name, command, err);
  }
}

/** Prints what went wrong; the exit code: 2 for a mistake on the command line, 1 for anything else. */
async function report(name: string, command: Command, err: unknown): Promise<number> {
  const parseError = (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  // Errors are rare: their classes are loaded only to tell them apart.
  const [{ UsageError }, { ConfigError }, { ExplainError }, { OverrideError }, { TokenError }] = await Promise.all([
    import('./cli/usage-error.js'),
    import('./config/load.js'),
    import('./explain.js'),
    import('./control/overrides.js'),
    import('./cli/token.js'),
  ]);
  if (err instanceof ConfigError) console.error(`arus ${name}: invalid configuration\n${err.message}`);
  else if (err instanceof UsageError || parseError) console.error(`arus ${name}: ${(err as Error).message}\n\nusage: ${command.usage}`);
  else if (err instanceof ExplainError || err instanceof OverrideError || err instanceof TokenError) console.error(`arus ${name}: ${err.message}`);
  else console.error(`arus ${name}: ${(err as Error).message}`);
  return err instanceof UsageError || parseError ? 2 : 1;
}

const code = await main(process.argv.slice(2));
// Servers keep the process alive; one-shot commands end here.
if (code !== 0) process.exit(code);
