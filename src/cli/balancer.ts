// `arus balancer`: a region's reverse proxy in front of its GPU model servers,
// configured from control and reporting its capacity back to it.
import type { Command } from './command.js';
import { parseListen } from './options.js';
import { onSignal } from './signal.js';
import { UsageError } from './usage-error.js';

const env = process.env;

export const balancerCommand: Command = {
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
    const [{ balancerSchema }, { startBalancer }] = await Promise.all([import('../config/schema.js'), import('../balancer/role.js')]);
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
};
