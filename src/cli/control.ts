// `arus control`: the control plane alone — admin API, health tracker, history.
import type { Command, Values } from './command.js';
import { help, opt, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { openStores } from './stores.js';

const env = process.env;

/** What `arus up` and `arus control` give control alike: where the API listens, and whether /metrics needs a token. */
export function controlOptions(values: Values, env: NodeJS.ProcessEnv) {
  return { listen: parseListen(String(values['api-listen']))[0], open: { metrics: env.ARUS_METRICS_OPEN !== 'false' } };
}

export const controlCommand: Command = {
  usage: `arus control [options]

  Needs ARUS_ADMIN_TOKEN (admin) and ARUS_PROBE_TOKEN (probe agents) in the
  environment; ARUS_DNS_TOKEN, if set, is a token DNS nodes may use (dns role).

${help.db}
${help.regions}
${help.api}`,
  options: { ...opt.db, ...opt.regions, ...opt.api },
  async run({ values }, log) {
    const [{ createMetrics }, { seedIfEmpty }, { startControl, staticTokensFrom }] = await Promise.all([
      import('../metrics/metrics.js'),
      import('../config/seed.js'),
      import('../roles.js'),
    ]);
    const metrics = createMetrics();
    const { db, store, healthStore } = await openStores(String(values.db), metrics);
    seedIfEmpty(store, String(values.regions));
    const control = await startControl({ ...controlOptions(values, env), db, store, healthStore, log, staticTokens: staticTokensFrom(env), status: { open: env.ARUS_STATUS_OPEN === 'true' }, metrics });
    log.info({ api: control.url }, 'ready');
    onSignal([control], log);
  },
};
