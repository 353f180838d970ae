// `arus probe`: a probe agent that checks every endpoint from its region and reports to control.
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { Command } from './command.js';
import { getFromControl } from './control-call.js';
import { intOption, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { controlLinks, insecurePlaintext, serverTls, tlsHelp, tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

const env = process.env;
const HEALTH_DEFAULT = '127.0.0.1:9154';

type Identity = { role: string; name: string; agent?: string; region?: string };

export const probeCommand: Command = {
  usage: `arus probe --control URL[,URL…] --token TOKEN [--region ID] [--id NAME] [--interval MS]

  Reports as the agent its credential names (a probe token is made for one
  agent: arus token create --role probe --agent ID --region ID; or a client
  certificate for spiffe://arus/probe/REGION/ID); --region and --id, when
  given, must be that agent's. Given several replicas of control, it sends
  every report to each of them (each with its own buffer and back-off) and
  checks the newest targets any of them gives.

  --control URL[,URL…]  control's API, e.g. https://control.example.com:8443; or every replica's, comma-separated
  --token TOKEN   this agent's probe token (or ARUS_PROBE_TOKEN); not needed with --client-cert
  --region ID     the region this agent runs in (its vantage point; default: its credential's)
  --id NAME       agent name (default: its credential's)
  --interval MS   time between rounds (default 500, jittered ±20 %)
  --health-listen ADDR  GET /healthz: the agent and each replica's state (default 127.0.0.1:9154, off: none; ARUS_HEALTH_LISTEN)
${tlsHelp.client}
                      (HTTPS checks trust --ca too, beside the system's CAs)
${tlsHelp.server}
                      (for /healthz; off loopback it needs them, or --insecure-plaintext)
${tlsHelp.insecure}`,
  options: {
    region: { type: 'string' },
    control: { type: 'string' },
    token: { type: 'string' },
    id: { type: 'string' },
    interval: { type: 'string' },
    'health-listen': { type: 'string', default: env.ARUS_HEALTH_LISTEN ?? HEALTH_DEFAULT },
    ...tlsOpt.client,
    ...tlsOpt.server,
    ...tlsOpt.insecure,
  },
  async run({ values }, log) {
    const controlUrl = values.control as string | undefined;
    // With a client certificate the certificate is the credential; a token is for control without mutual TLS.
    const token = (values.token as string | undefined) ?? env.ARUS_PROBE_TOKEN ?? '';
    if (!controlUrl || (!token && !values['client-cert'])) throw new UsageError('probe needs --control, and --token or --client-cert');
    const healthRaw = String(values['health-listen']);
    const healthListen = healthRaw === 'off' ? undefined : parseListen(healthRaw)[0];
    const tls = await serverTls(values, log);
    // Refused before anything starts: a plain-text /healthz off loopback.
    const { requireSecureListener } = await import('../tls/plaintext.js');
    if (healthListen) requireSecureListener("the probe agent's /healthz", healthListen, { tls: tls !== undefined, insecurePlaintext: insecurePlaintext(values) });
    const link = await controlLinks(values, controlUrl, log);
    const me = await getFromControl<Identity>(link, '/v1/whoami', token, log);
    const id = (values.id as string | undefined) ?? me.agent;
    const region = (values.region as string | undefined) ?? me.region;
    if (!id || !region) throw new UsageError(`the credential "${me.name}" (${me.role}) names no agent: give --region and --id, or use a probe token made with --agent and --region`);
    const [{ createProbeAgent }, { healthHandler, probeHealth }, { listenHttp }] = await Promise.all([import('../probe/agent.js'), import('../probe/health.js'), import('../http-listener.js')]);
    // The CA that vouches for control vouches for the region's own HTTPS endpoints too (the system's CAs stay trusted).
    const ca = typeof values.ca === 'string' && values.ca ? [readFileSync(values.ca)] : undefined;
    const agent = createProbeAgent({ id, region, controlUrls: link.urls, token, intervalMs: intOption(values.interval, 'interval'), log, fetchImpl: link.http.fetch, checkTls: { extraCa: ca } });
    const serve = (at: NonNullable<typeof healthListen>) => listenHttp(healthHandler(() => probeHealth({ id, region }, agent.stats)), at, { what: "the probe agent's /healthz", tls, insecurePlaintext: insecurePlaintext(values) });
    const health = healthListen ? await serve(healthListen).catch((err: NodeJS.ErrnoException) => healthTaken(err, healthRaw, log)) : undefined;
    agent.start();
    onSignal([agent, ...(health ? [health] : []), { stop: async () => { tls?.stop(); await link.http.close(); } }], log);
    log.info({ region, agent: id, control: link.urls.length === 1 ? link.urls[0] : link.urls, health: health ? `${health.url}/healthz` : 'off' }, 'ready');
  },
};

/**
 * The default /healthz port taken (another agent on this machine got it
 * first): the agent runs without it, saying so. An address the operator
 * chose that cannot be had stops the agent.
 */
function healthTaken(err: NodeJS.ErrnoException, asked: string, log: Logger): undefined {
  if (err.code !== 'EADDRINUSE' || asked !== HEALTH_DEFAULT || env.ARUS_HEALTH_LISTEN !== undefined) throw err;
  log.warn({ listen: asked, err: err.message }, '/healthz off: its default address is taken (another agent on this machine?); give each agent its own --health-listen');
  return undefined;
}
