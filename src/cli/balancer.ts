// `arus balancer`: a region's reverse proxy in front of its GPU model servers,
// configured from control (any of its replicas, followed live) and reporting
// its capacity back to every replica.
import type { BalancerDoc } from '../config/schema.js';
import type { Command } from './command.js';
import { getFromControl } from './control-call.js';
import { parseListen } from './options.js';
import { onSignal } from './signal.js';
import { controlLinks, insecurePlaintext, serverTls, tlsHelp, tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

const env = process.env;

export const balancerCommand: Command = {
  usage: `arus balancer --control URL[,URL…] --token TOKEN [--region ID] [--id NAME] [--listen ADDR:PORT]

  Reads the region's balancer section from control, proxies to its instances
  with the configured strategy, and reports its capacity to control, for the
  region its credential names (arus token create --role balancer --region ID,
  or a client certificate for spiffe://arus/balancer/ID). It polls the section
  (a 304 while it is unchanged) and applies a change live: instances added,
  removed or re-weighted, strategy, limits; requests under way finish where
  they started. Only a change of its listen addresses needs a restart. Given
  several replicas of control, it reads from any (the next on failure) and
  reports to all. GET /healthz on its listeners: itself, its link to control
  and its instances.

  --control URL[,URL…]  control's API, e.g. https://control.example.com:8443; or every replica's, comma-separated
  --token TOKEN   this region's balancer token (or ARUS_BALANCER_TOKEN); not needed with --client-cert
  --region ID     the region whose balancer this is (default: its credential's)
  --listen ADDR   override the document's listen address
${tlsHelp.client}
${tlsHelp.server}
                      (for the balancer's clients)
${tlsHelp.insecure}`,
  options: {
    region: { type: 'string' },
    control: { type: 'string' },
    token: { type: 'string' },
    id: { type: 'string' },
    listen: { type: 'string' },
    ...tlsOpt.client,
    ...tlsOpt.server,
    ...tlsOpt.insecure,
  },
  async run({ values }, log) {
    const controlUrl = values.control as string | undefined;
    const token = (values.token as string | undefined) ?? env.ARUS_BALANCER_TOKEN ?? '';
    if (!controlUrl || (!token && !values['client-cert'])) throw new UsageError('balancer needs --control, and --token or --client-cert');
    const [{ balancerSchema }, { startBalancer }, { createBalancerControlLink }] = await Promise.all([import('../config/schema.js'), import('../balancer/role.js'), import('../balancer/control-link.js')]);
    const tls = await serverTls(values, log);
    const link = await controlLinks(values, controlUrl, log);
    const region = (values.region as string | undefined) ?? (await getFromControl<{ region?: string }>(link, '/v1/whoami', token, log)).region;
    if (!region) throw new UsageError('the credential names no region: give --region, or use a balancer token made with --region');
    const doc: BalancerDoc = balancerSchema.parse(await getFromControl(link, `/v1/balancers/${encodeURIComponent(region)}`, token, log));
    const id = (values.id as string | undefined) ?? `balancer-${region}-${process.pid}`;
    const blog = log.child({ component: 'balancer', region });
    const control = createBalancerControlLink({ urls: link.urls, region, token, fetchImpl: link.http.fetch, log: blog });
    const balancer = await startBalancer({
      region,
      id,
      doc,
      log: blog,
      listen: values.listen ? parseListen(String(values.listen))[0] : undefined,
      tls,
      insecurePlaintext: insecurePlaintext(values),
      report: control.report,
      control: control.status,
    });
    control.follow((next) => void balancer.reconfigure(next));
    // Stopped last first: the polls, then the balancer, then the TLS files and the client.
    onSignal([{ stop: async () => { tls?.stop(); await link.http.close(); } }, balancer, control], log);
    log.info({ region, port: balancer.port, strategy: doc.strategy, instances: doc.instances.length, tls: tls !== undefined, control: link.urls.length === 1 ? link.urls[0] : link.urls }, 'ready');
  },
};
