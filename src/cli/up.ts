// `arus up`: every role in one process, the embedded default `npm start` runs.
import type { Config } from '../config/schema.js';
import type { Control } from '../control/control.js';
import type { Logger } from '../log.js';
import type { Stoppable } from '../roles.js';
import type { Command } from './command.js';
import { controlOptions, resolverHelp, resolverOpt } from './control.js';
import { dnsWorkers, help, intOption, opt, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { openStores } from './stores.js';
import { controlLink, insecurePlaintext, serverTls, tlsHelp, tlsOpt } from './tls-options.js';
import { updateHelp, updateOpt, updateSettings } from './tsig.js';
import { UsageError } from './usage-error.js';

const env = process.env;

type StartBalancer = (typeof import('../balancer/role.js'))['startBalancer'];

export const upCommand: Command = {
  usage: `arus up [options]

  control (admin API), DNS, one probe agent per region, the balancer of every
  region with a balancer section and — unless --sim off — a simulated model
  server on every loopback balancer instance and health-check target.

${help.db}
${help.regions}
${help.dns}
${help.api}
${updateHelp}
${resolverHelp}
  --sim auto|off      start simulated model servers for loopback instances and check targets (default auto)
  --probe-interval MS probe interval (default 500)
${tlsHelp.server}
                      (for the API; the in-process probes trust --ca)
  --ca FILE           PEM CA the API's certificate chains to, for the in-process probes (ARUS_CA)
${tlsHelp.insecure}`,
  options: {
    ...opt.db,
    ...opt.regions,
    ...opt.dns,
    ...opt.api,
    ...updateOpt,
    ...resolverOpt,
    sim: { type: 'string', default: 'auto' },
    'probe-interval': { type: 'string' },
    ...tlsOpt.server,
    ca: tlsOpt.client.ca,
    ...tlsOpt.insecure,
  },
  async run({ values }, log) {
    const [{ createMetrics }, { seedIfEmpty }, { startBalancer }, roles] = await Promise.all([
      import('../metrics/metrics.js'),
      import('../config/seed.js'),
      import('../balancer/role.js'),
      import('../roles.js'),
    ]);
    const { internalToken, simTargets, startControl, startDns, startProbes, startSims, staticTokensFrom } = roles;
    const update = await updateSettings(values);
    const tls = await serverTls(values, log);
    const metrics = createMetrics();
    const { db, store, healthStore } = await openStores(String(values.db), metrics);
    const seeded = seedIfEmpty(store, String(values.regions));
    if (seeded) log.info({ regions: values.regions, version: seeded.version }, 'empty database seeded');
    const parts: Stoppable[] = [];
    if (values.sim !== 'off') {
      if (values.sim !== 'auto') throw new UsageError('--sim must be auto or off');
      parts.push(await startSims({ listen: simTargets(store.getConfig()!), log }));
    }
    // Each in-process agent has a token bound to itself, as agents elsewhere do.
    const regions = store.getConfig()!.regions.map((r) => r.id);
    const probeTokens = regions.map((region) => ({ token: internalToken(), role: 'probe' as const, name: `probe-${region}`, agent: `probe-${region}`, region }));
    const control = await startControl({
      ...controlOptions(values, env),
      db,
      store,
      healthStore,
      log,
      staticTokens: staticTokensFrom(env, probeTokens),
      // The demo runs on loopback: its status page opens without a token there (ARUS_STATUS_OPEN=false to require one).
      status: { open: env.ARUS_STATUS_OPEN !== 'false' },
      metrics,
      tls,
      insecurePlaintext: insecurePlaintext(values),
      update,
    });
    parts.push(control);
    if (tls) parts.push({ stop: () => tls.stop() });
    const dns = await startDns({ getState: control.control.current, listen: parseListen(String(values['dns-listen'])), log, metrics, workers: await dnsWorkers(values) });
    parts.push(dns);
    const balancers = await startBalancers(store.getConfig()!, { startBalancer, control: control.control, store, log, parts });
    const link = await controlLink(values, control.url, log);
    parts.push({ stop: () => link.http.close() });
    parts.push(await startProbes({ agents: probeTokens, controlUrl: link.url, fetchImpl: link.http.fetch, log, intervalMs: intOption(values['probe-interval'], 'probe-interval') }));
    onSignal(parts, log);
    log.info({ udp: dns.bound.udp, tcp: dns.bound.tcp, api: control.url, update: control.update?.port ?? null, balancers, adminToken: env.ARUS_ADMIN_TOKEN ? 'from ARUS_ADMIN_TOKEN' : 'none set: the API accepts no admin' }, 'ready');
  },
};

/**
 * The balancer of every region that has a balancer section, reporting its
 * capacity to control in-process; region → port. They follow the
 * configuration live: at every snapshot whose configuration version moved, a
 * changed section is applied to its running balancer, a new one is started.
 */
async function startBalancers(
  config: Config,
  deps: { startBalancer: StartBalancer; control: Control; store: { version(): number; getConfig(): Config | undefined }; log: Logger; parts: Stoppable[] },
): Promise<Record<string, number>> {
  const { startBalancer, control, store, log, parts } = deps;
  const running = new Map<string, Awaited<ReturnType<StartBalancer>>>();
  const start = async (r: Config['regions'][number]) => {
    const b = await startBalancer({ region: r.id, id: `balancer-${r.id}`, doc: r.balancer!, log: log.child({ component: 'balancer', region: r.id }), report: (c) => control.reportCapacity({ ...c, at: Date.now() }) });
    running.set(r.id, b);
    parts.push(b);
    return b;
  };
  const balancers: Record<string, number> = {};
  for (const r of config.regions.filter((x) => x.balancer)) balancers[r.id] = (await start(r)).port;

  let seen = store.version();
  /** Regions whose new balancer is being started (not twice), and whose removed section was told (once). */
  const starting = new Set<string>();
  const orphaned = new Set<string>();
  const follow = (next: Config) => {
    for (const r of next.regions) {
      const b = running.get(r.id);
      if (b && r.balancer) {
        orphaned.delete(r.id);
        b.reconfigure(r.balancer);
      } else if (b && !orphaned.has(r.id)) {
        orphaned.add(r.id);
        log.warn({ region: r.id }, "the region's balancer section was removed: its balancer keeps its last configuration until arus up restarts");
      } else if (!b && r.balancer && !starting.has(r.id)) {
        starting.add(r.id);
        void start(r).then(
          (started) => log.info({ region: r.id, port: started.port }, 'balancer started for a new balancer section'),
          (err: Error) => {
            starting.delete(r.id);
            log.error({ region: r.id, err: err.message }, 'cannot start the new balancer; the next configuration change tries again');
          },
        );
      }
    }
  };
  const unsubscribe = control.subscribe(() => {
    if (store.version() === seen) return;
    seen = store.version();
    const next = store.getConfig();
    if (next) follow(next);
  });
  parts.push({ stop: () => void unsubscribe() });
  return balancers;
}
