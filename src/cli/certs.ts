// `arus certs init`: a CA, a server certificate for the names and addresses
// the listeners answer on, and a client certificate per identity, written as
// PEM files (keys 0600) for a lab or a first deployment.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from './command.js';
import { intOption } from './options.js';
import { UsageError } from './usage-error.js';

export const certsCommand: Command = {
  usage: `arus certs init --out DIR --names NAME,... [--clients IDENTITY,...] [--days N] [--trust-domain TD] [--force]

  Writes DIR/ca.crt and ca.key (keep the key offline), DIR/server.crt and
  server.key for every name and IP address in --names (one certificate for
  control, balancers and DNS nodes' /metrics in a lab), and a client
  certificate per identity in --clients, named by role and id:

    probe/REGION/AGENT   a probe agent          → probe-REGION-AGENT.crt
    balancer/REGION      a region's balancer    → balancer-REGION.crt
    dns/NODE             a DNS node             → dns-NODE.crt
    admin/NAME, operator/NAME, viewer/NAME: people

  Each client certificate carries the URI spiffe://TD/IDENTITY (TD: arus unless
  --trust-domain) and the identity as its CN. Existing files are kept unless --force.

  --days N        validity (default 365)
  --peer          server.crt also authenticates as a client: what an etcd
                  member's certificate needs for its peer links (etcd 3.4)`,
  options: { out: { type: 'string' }, names: { type: 'string' }, clients: { type: 'string' }, days: { type: 'string' }, 'trust-domain': { type: 'string' }, force: { type: 'boolean', default: false }, peer: { type: 'boolean', default: false } },
  async run({ values, positionals }) {
    if (positionals[0] !== 'init') throw new UsageError('certs needs init');
    const out = values.out as string | undefined;
    const names = String(values.names ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (!out || names.length === 0) throw new UsageError('certs init needs --out DIR and --names NAME,...');
    const clients = String(values.clients ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const days = intOption(values.days, 'days') ?? 365;
    const trustDomain = (values['trust-domain'] as string | undefined) ?? 'arus';
    const { identityOf } = await import('../tls/identity.js');
    for (const c of clients) {
      const id = identityOf({ subjectaltname: `URI:spiffe://${trustDomain}/${c}`, subject: {} }, trustDomain);
      if (!id || 'error' in id) throw new UsageError(`--clients ${c}: ${id && 'error' in id ? id.error : 'not an identity'}`);
    }
    const files = ['ca', 'server', ...clients.map((c) => c.replaceAll('/', '-'))].flatMap((f) => [`${f}.crt`, `${f}.key`]);
    const taken = files.filter((f) => existsSync(join(out, f)));
    if (taken.length && !values.force) throw new UsageError(`${out} already has ${taken.join(', ')}: keep them, or say --force`);

    const { createAuthority, issue, issueClient } = await import('../tls/certs.js');
    mkdirSync(out, { recursive: true });
    const write = (name: string, pem: { cert: string; key: string }) => {
      writeFileSync(join(out, `${name}.crt`), pem.cert, { mode: 0o644 });
      writeFileSync(join(out, `${name}.key`), pem.key, { mode: 0o600 });
    };
    const ca = await createAuthority({ days });
    write('ca', ca);
    write('server', await issue(ca, { name: names[0], hosts: names, usage: values.peer ? 'both' : 'server', days }));
    for (const c of clients) write(c.replaceAll('/', '-'), await issueClient(ca, c, { days, trustDomain }));
    console.log(
      [
        `wrote to ${out}: ${files.join(', ')}`,
        '',
        `  control:    arus control --tls-cert ${join(out, 'server.crt')} --tls-key ${join(out, 'server.key')} --tls-client-ca ${join(out, 'ca.crt')}`,
        `  every role: --ca ${join(out, 'ca.crt')} --client-cert <identity>.crt --client-key <identity>.key`,
        '',
        `server.crt names ${names.join(', ')}; valid ${days} days.`,
      ].join('\n'),
    );
  },
};
