// `arus probe`: a probe agent that checks every endpoint from its region and reports to control.
import { readFileSync } from 'node:fs';
import type { Command } from './command.js';
import { getFromControl } from './control-call.js';
import { intOption } from './options.js';
import { onSignal } from './signal.js';
import { controlLink, tlsHelp, tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

const env = process.env;

type Identity = { role: string; name: string; agent?: string; region?: string };

export const probeCommand: Command = {
  usage: `arus probe --control URL --token TOKEN [--region ID] [--id NAME] [--interval MS]

  Reports as the agent its credential names (a probe token is made for one
  agent: arus token create --role probe --agent ID --region ID; or a client
  certificate for spiffe://arus/probe/REGION/ID); --region and --id, when
  given, must be that agent's.

  --control URL   control's API, e.g. https://control.example.com:8443
  --token TOKEN   this agent's probe token (or ARUS_PROBE_TOKEN); not needed with --client-cert
  --region ID     the region this agent runs in (its vantage point; default: its credential's)
  --id NAME       agent name (default: its credential's)
  --interval MS   time between rounds (default 500, jittered ±20 %)
${tlsHelp.client}
                      (HTTPS checks trust --ca too, beside the system's CAs)
${tlsHelp.insecure}`,
  options: {
    region: { type: 'string' },
    control: { type: 'string' },
    token: { type: 'string' },
    id: { type: 'string' },
    interval: { type: 'string' },
    ...tlsOpt.client,
    ...tlsOpt.insecure,
  },
  async run({ values }, log) {
    const controlUrl = values.control as string | undefined;
    // With a client certificate the certificate is the credential; a token is for control without mutual TLS.
    const token = (values.token as string | undefined) ?? env.ARUS_PROBE_TOKEN ?? '';
    if (!controlUrl || (!token && !values['client-cert'])) throw new UsageError('probe needs --control, and --token or --client-cert');
    const link = await controlLink(values, controlUrl, log);
    const me = await getFromControl<Identity>(link, '/v1/whoami', token, log);
    const id = (values.id as string | undefined) ?? me.agent;
    const region = (values.region as string | undefined) ?? me.region;
    if (!id || !region) throw new UsageError(`the credential "${me.name}" (${me.role}) names no agent: give --region and --id, or use a probe token made with --agent and --region`);
    const { createProbeAgent } = await import('../probe/agent.js');
    // The CA that vouches for control vouches for the region's own HTTPS endpoints too (the system's CAs stay trusted).
    const ca = typeof values.ca === 'string' && values.ca ? [readFileSync(values.ca)] : undefined;
    const agent = createProbeAgent({ id, region, controlUrl: link.url, token, intervalMs: intOption(values.interval, 'interval'), log, fetchImpl: link.http.fetch, checkTls: { extraCa: ca } });
    agent.start();
    log.info({ region, agent: id, control: link.url }, 'ready');
    onSignal([agent, { stop: () => link.http.close() }], log);
  },
};
