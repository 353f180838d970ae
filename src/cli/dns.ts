// `arus dns`: the authoritative responder, answering from control's snapshots
// (--control) or from control's SQLite file on the same machine (--db).
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StateSource } from '../snapshot/source.js';
import type { Command, Values } from './command.js';
import { DEFAULTS, dnsWorkers, help, opt, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { openStores } from './stores.js';
import { controlLinks, insecurePlaintext, serverTls, tlsHelp, tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

const env = process.env;

/** Where the answers come from, and what the ready line says about it. */
type Origin = { source: { current: StateSource['current']; stop(): unknown }; origin: Record<string, unknown>; close?: () => Promise<void> };

export const dnsCommand: Command = {
  usage: `arus dns --control URL[,URL…] --token TOKEN [--snapshot FILE] [options]
       arus dns --db FILE [options]

  With --control: follows the snapshots control streams, validates each before
  swapping it in whole (a bad one is refused and the old one kept), and writes
  the last good one to --snapshot. A restart answers from that file at once,
  control up or not, and the node answers from it for as long as control is
  away, reconnecting with back-off; control records the gap when it is back.
  Given several replicas of control, it streams from one at a time (the first
  that answers, in the order given) and moves to the next when that one
  fails; it never takes a snapshot older than the one it holds.
  With --db: reads the configuration and health control writes to its SQLite
  file on the same machine, and picks up every change within a second.

  --control URL[,URL…]    control's API, e.g. https://control.example.com:8443; or every replica's, comma-separated
  --token TOKEN           this node's dns token (arus token create --role dns --node ID), or ARUS_DNS_TOKEN;
                          not needed with --client-cert
  --snapshot FILE         the last good snapshot (default ./data/dns-snapshot.json; ARUS_SNAPSHOT)
  --id NAME               this node's name in control's history (default: the node its credential names)
  --db FILE               the database, instead of --control (default ${DEFAULTS.db}; ARUS_DB)
${help.dns}
  --metrics-listen ADDR   Prometheus /metrics (default 127.0.0.1:9153; ARUS_METRICS_LISTEN)
${tlsHelp.client}
${tlsHelp.server}
                      (for /metrics)
${tlsHelp.insecure}`,
  options: {
    control: { type: 'string' },
    token: { type: 'string' },
    snapshot: { type: 'string', default: env.ARUS_SNAPSHOT ?? './data/dns-snapshot.json' },
    id: { type: 'string' },
    db: { type: 'string' },
    ...opt.dns,
    'metrics-listen': { type: 'string', default: env.ARUS_METRICS_LISTEN ?? '127.0.0.1:9153' },
    ...tlsOpt.client,
    ...tlsOpt.server,
    ...tlsOpt.insecure,
  },
  async run({ values }, log) {
    const [{ createMetrics }, { prepareDns, startMetricsServer }] = await Promise.all([import('../metrics/metrics.js'), import('../roles.js')]);
    const metrics = createMetrics();
    const controlUrl = values.control as string | undefined;
    const metricsListen = parseListen(String(values['metrics-listen']))[0];
    const tls = await serverTls(values, log);
    // Refused before anything starts: a plain-text /metrics off loopback.
    const { requireSecureListener } = await import('../tls/plaintext.js');
    requireSecureListener("the DNS node's /metrics", metricsListen, { tls: tls !== undefined, insecurePlaintext: insecurePlaintext(values) });
    // The DNS workers start loading while the first snapshot is read (from the file, control or the database).
    const prepared = await prepareDns({ listen: parseListen(String(values['dns-listen'])), log, metrics, workers: await dnsWorkers(values) });
    const { source, origin, close } = await (controlUrl ? followControl(controlUrl, values, log, metrics) : readDatabase(values, log)).catch(async (err: unknown) => {
      await prepared.stop();
      throw err;
    });
    const dns = await prepared.start(source.current);
    const metricsServer = await startMetricsServer({ metrics, listen: metricsListen, tls, insecurePlaintext: insecurePlaintext(values) });
    // Stopped last started first: the metrics, DNS, the snapshot source (which aborts its stream), and only then the
    // link to control, whose graceful close would otherwise wait for that stream to end.
    onSignal([{ stop: async () => { tls?.stop(); await close?.(); } }, { stop: async () => void (await source.stop()) }, dns, metricsServer], log);
    log.info({ udp: dns.bound.udp, tcp: dns.bound.tcp, metrics: metricsServer.url, version: source.current().snapshot.version, ...origin }, 'ready');
  },
};

/** --control: the snapshots control (any of its replicas) streams, kept in --snapshot; ready from that file at once if there is one. */
async function followControl(controlUrl: string, values: Values, log: Logger, metrics: Metrics): Promise<Origin> {
  const token = (values.token as string | undefined) ?? env.ARUS_DNS_TOKEN ?? '';
  if (values.db) throw new UsageError('dns takes --control or --db, not both');
  if (!token && !values['client-cert']) throw new UsageError('dns --control needs --token (or ARUS_DNS_TOKEN), or --client-cert');
  const link = await controlLinks(values, controlUrl, log);
  // Only this mode needs them.
  const { createControlStateSource } = await import('../snapshot/control-source.js');
  const { createSnapshotFile } = await import('../snapshot/file.js');
  const { observeControlSource } = await import('../snapshot/metrics.js');
  const file = String(values.snapshot);
  // Without --id control names the node after its credential (a dns token's node, a certificate's).
  const node = values.id as string | undefined;
  const control = createControlStateSource({
    urls: link.urls,
    token,
    fetchImpl: link.http.fetch,
    node,
    file: createSnapshotFile(file),
    log: log.child({ component: 'snapshot' }),
  });
  observeControlSource(metrics.registry, control);
  // From the file at once; without one, when control sends its first snapshot.
  await control.ready();
  const origin = { control: link.urls.length === 1 ? link.urls[0] : link.urls, snapshot: file, from: control.stats().from };
  return { source: control, origin, close: () => link.http.close() };
}


/** --db: the configuration and health control writes to its SQLite file on this machine. */
async function readDatabase(values: Values, log: Logger): Promise<Origin> {
  const db = String(values.db ?? DEFAULTS.db);
  const { db: handle, store, healthStore } = await openStores(db);
  // The key RRsets are signed by control's publisher alone: a node reading the database would serve a signed zone unsigned, and validators reject that.
  const apex = store.getConfig()?.zone.apex;
  const { createDnssecKeyStore } = await import('../db/dnssec-keys.js');
  if (apex && createDnssecKeyStore(handle).list(apex).some((k) => k.state === 'active'))
    throw new UsageError(`${apex} is signed (arus dnssec status --db ${db}), and a node that reads the database (--db) cannot sign: run this node with --control URL and a dns token whose node is in zone.dnssec.signers`);
  const { createDbStateSource } = await import('../snapshot/source.js');
  return { source: createDbStateSource({ store, healthStore, log: log.child({ component: 'snapshot' }) }), origin: { db } };
}
