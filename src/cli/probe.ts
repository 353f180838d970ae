// `arus probe`: a probe agent that checks every endpoint from its region and reports to control.
import type { Command } from './command.js';
import { intOption } from './options.js';
import { onSignal } from './signal.js';
import { UsageError } from './usage-error.js';

const env = process.env;

export const probeCommand: Command = {
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
    const { createProbeAgent } = await import('../probe/agent.js');
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
};
