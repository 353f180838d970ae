// `arus control`: the control plane alone — admin API, health tracker, history.
import type { Command, Values } from './command.js';
import { help, opt, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { openStores } from './stores.js';
import { insecurePlaintext, serverTls, tlsHelp, tlsOpt, trustDomain } from './tls-options.js';

const env = process.env;

/** What `arus up` and `arus control` give control alike: where the API listens, and whether /metrics needs a token. */
export function controlOptions(values: Values, env: NodeJS.ProcessEnv) {
  return { listen: parseListen(String(values['api-listen']))[0], open: { metrics: env.ARUS_METRICS_OPEN !== 'false' } };
}

export const controlCommand: Command = {
  usage: `arus control [options]

  ARUS_ADMIN_TOKEN in the environment is the bootstrap admin token. Every
  machine has a credential of its own, bound to the one identity it speaks
  for: arus token create --role probe --agent ID --region ID, --role balancer
  --region ID, --role dns --node ID; or, with --tls-client-ca, a client
  certificate for spiffe://arus/probe/REGION/ID, .../balancer/REGION,
  .../dns/NODE. Off loopback the API listens only over TLS.

${help.db}
${help.regions}
${help.api}
${tlsHelp.server}
${tlsHelp.clientCa}
${tlsHelp.insecure}`,
  options: { ...opt.db, ...opt.regions, ...opt.api, ...tlsOpt.server, ...tlsOpt.clientCa, ...tlsOpt.insecure },
  async run({ values }, log) {
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
    });
    log.info({ api: control.url, tls: tls ? (tls.mutual ? 'mutual' : 'server') : 'off' }, 'ready');
    onSignal([control, { stop: () => tls?.stop() }], log);
  },
};
