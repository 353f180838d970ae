// `arus control`: the control plane alone — admin API, health tracker, history.
import { isIP } from 'node:net';
import type { Logger } from '../log.js';
import type { Command, Values } from './command.js';
import { help, intOption, opt, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { etcdHelp, etcdOpt, etcdSettings } from './etcd-options.js';
import { openStores } from './stores.js';
import { insecurePlaintext, serverTls, tlsHelp, tlsOpt, trustDomain } from './tls-options.js';
import { keyEncryptionKeyOf, updateHelp, updateOpt, updateSettings } from './tsig.js';
import { UsageError } from './usage-error.js';

const env = process.env;

/** `--resolver`: where control resolves hostname endpoints' names. */
export const resolverOpt = { resolver: { type: 'string', default: env.ARUS_RESOLVER } } as const;
export const resolverHelp = `  --resolver ADDR[,…]  the resolver(s) hostname endpoints' names are resolved through, IP or IP:PORT
                      or [V6]:PORT (default: the system's, /etc/resolv.conf; ARUS_RESOLVER)`;

/** The `--resolver` list, checked: each an IP address with an optional port. */
export function resolverList(value: string | undefined): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(item) ?? /^()([0-9a-fA-F:]+)()$/.exec(item);
      const host = m?.[1] || m?.[2];
      if (!m || !host || isIP(host) === 0 || (m[3] && Number(m[3]) > 65535))
        throw new UsageError(`--resolver "${item}": use an IP address, IP:PORT or [V6]:PORT (a resolver is reached by address)`);
      return item;
    });
}

/** What `arus up` and `arus control` give control alike: where the API listens, whether /metrics needs a token, the resolver. */
export function controlOptions(values: Values, env: NodeJS.ProcessEnv) {
  return { listen: parseListen(String(values['api-listen']))[0], open: { metrics: env.ARUS_METRICS_OPEN !== 'false' }, resolvers: resolverList(values.resolver as string | undefined) };
}

export const controlCommand: Command = {
  usage: `arus control [options]

  ARUS_ADMIN_TOKEN in the environment is the bootstrap admin token. Every
  machine has a credential of its own, bound to the one identity it speaks
  for: arus token create --role probe --agent ID --region ID, --role balancer
  --region ID, --role dns --node ID; or, with --tls-client-ca, a client
  certificate for spiffe://arus/probe/REGION/ID, .../balancer/REGION,
  .../dns/NODE. Off loopback the API listens only over TLS.

  With --etcd it is one replica of a replicated control plane (three or
  more): configuration, overrides, tokens, audit and history live in etcd,
  --db is this replica's read model (a file of its own), and the replica
  elected through an etcd lease writes health and its history.

${help.db}
${help.regions}
${help.api}
${updateHelp}
${resolverHelp}
${tlsHelp.server}
${tlsHelp.clientCa}
${tlsHelp.insecure}
${etcdHelp}
  --replica-id NAME   this replica's name (default control-<host>-<port>; ARUS_REPLICA_ID)
  --advertise-url URL the URL other roles reach this replica at (default: its listen URL; ARUS_ADVERTISE_URL)
  --lease-ttl S       the leader's lease in seconds (default 2; renewed every third of it)`,
  options: {
    ...opt.db,
    ...opt.regions,
    ...opt.api,
    ...updateOpt,
    ...resolverOpt,
    ...tlsOpt.server,
    ...tlsOpt.clientCa,
    ...tlsOpt.insecure,
    ...etcdOpt,
    'replica-id': { type: 'string', default: env.ARUS_REPLICA_ID },
    'advertise-url': { type: 'string', default: env.ARUS_ADVERTISE_URL },
    'lease-ttl': { type: 'string' },
  },
  async run({ values }, log) {
    const etcd = etcdSettings(values);
    const update = await updateSettings(values);
    if (etcd) return runReplica(values, etcd, update, log);
    const [{ createMetrics }, { seedIfEmpty }, { startControl, staticTokensFrom }] = await Promise.all([
      import('../metrics/metrics.js'),
      import('../config/seed.js'),
      import('../roles.js'),
    ]);
    const staticTokens = staticTokensFrom(env);
    const tls = await serverTls(values, log);
    const metrics = createMetrics();
    const { db, store, healthStore } = await openStores(String(values.db), metrics);
    seedIfEmpty(store, String(values.regions));
    const control = await startControl({
      ...controlOptions(values, env),
      db,
      store,
      healthStore,
      log,
      staticTokens,
      status: { open: env.ARUS_STATUS_OPEN === 'true' },
      metrics,
      tls,
      trustDomain: trustDomain(values),
      insecurePlaintext: insecurePlaintext(values),
      update,
    });
    onSignal([control, { stop: () => tls?.stop() }], log);
    log.info({ api: control.url, update: control.update?.port ?? null, tls: tls ? (tls.mutual ? 'mutual' : 'server') : 'off' }, 'ready');
  },
};

/** `arus control --etcd`: one replica of the replicated control plane. */
async function runReplica(values: Values, etcd: NonNullable<ReturnType<typeof etcdSettings>>, update: Awaited<ReturnType<typeof updateSettings>>, log: Logger): Promise<void> {
  const [{ createMetrics }, { staticTokensFrom }, { startReplicatedControl }] = await Promise.all([import('../metrics/metrics.js'), import('../roles.js'), import('../replicated-control.js')]);
  const staticTokens = staticTokensFrom(env);
  const tls = await serverTls(values, log);
  const ttl = intOption(values['lease-ttl'], 'lease-ttl');
  const replica = await startReplicatedControl({
    ...controlOptions(values, env),
    etcd,
    id: values['replica-id'] as string | undefined,
    advertiseUrl: values['advertise-url'] as string | undefined,
    dbFile: String(values.db),
    seed: String(values.regions),
    leaseTtlS: ttl,
    staticTokens,
    status: { open: env.ARUS_STATUS_OPEN === 'true' },
    metrics: createMetrics(),
    tls,
    trustDomain: trustDomain(values),
    insecurePlaintext: insecurePlaintext(values),
    update,
    kek: await keyEncryptionKeyOf(values),
    log,
  });
  onSignal([replica, { stop: () => tls?.stop() }], log);
  log.info({ api: replica.url, update: replica.update?.port ?? null, replica: replica.id, leader: replica.election.leaderId() ?? null, tls: tls ? (tls.mutual ? 'mutual' : 'server') : 'off' }, 'ready');
}
