import { describe, expect, it } from 'vitest';
import { staticTokensFrom } from './roles.js';

describe('staticTokensFrom: the tokens control takes from its environment', () => {
  it('takes the bootstrap admin token, and the bound tokens it is given', () => {
    const probe = { token: 'p', role: 'probe' as const, name: 'probe-jkt', agent: 'probe-jkt', region: 'jkt' };
    expect(staticTokensFrom({ ARUS_ADMIN_TOKEN: 'a' }, [probe])).toEqual([probe, { token: 'a', role: 'admin', name: 'bootstrap-admin' }]);
    expect(staticTokensFrom({})).toEqual([]);
  });

  it('refuses a shared probe token, naming the command that makes a bound one', () => {
    const refused = () => staticTokensFrom({ ARUS_ADMIN_TOKEN: 'a', ARUS_PROBE_TOKEN: 'shared' });
    expect(refused).toThrow(/^ARUS_PROBE_TOKEN is set for control/);
    expect(refused).toThrow(/report as any agent/);
    expect(refused).toThrow('arus token create --role probe --agent ID --region ID');
  });

  it('refuses a shared DNS token, naming the command that makes a bound one', () => {
    const refused = () => staticTokensFrom({ ARUS_DNS_TOKEN: 'shared' });
    expect(refused).toThrow(/^ARUS_DNS_TOKEN is set for control/);
    expect(refused).toThrow('arus token create --role dns --node ID');
  });

  it('takes an empty variable for unset', () => {
    expect(staticTokensFrom({ ARUS_PROBE_TOKEN: '', ARUS_DNS_TOKEN: '' })).toEqual([]);
  });
});

describe('startControl under mutual TLS: the client certificate is the credential', () => {
  it('reads identities in the trust domain it is given, and refuses those of another', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createAuthority, issue, issueClient } = await import('./tls/certs.js');
    const { createServerCredentials } = await import('./tls/server.js');
    const { createControlHttp } = await import('./tls/client.js');
    const { openDatabase } = await import('./db/database.js');
    const { createStore } = await import('./db/store.js');
    const { createHealthStore } = await import('./db/health-store.js');
    const { configRules } = await import('./config/rules.js');
    const { loadDocuments } = await import('./config/load.js');
    const { createMetrics } = await import('./metrics/metrics.js');
    const { silentLogger } = await import('./log.js');
    const { startControl } = await import('./roles.js');
    const dir = mkdtempSync(join(tmpdir(), 'arus-roles-'));
    const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    const ca = await createAuthority();
    const server = await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' });
    const log = silentLogger();
    const tls = createServerCredentials({ cert: file('s.crt', server.cert), key: file('s.key', server.key), clientCa: file('ca.crt', ca.cert) }, log);
    const db = openDatabase(':memory:');
    const store = createStore(db, { rules: configRules });
    store.apply(loadDocuments([join(import.meta.dirname, '..', 'regions')]));
    const control = await startControl({ db, store, healthStore: createHealthStore(db), log, listen: { address: '127.0.0.1', port: 0 }, staticTokens: [], metrics: createMetrics({ defaultMetrics: false }), tls, trustDomain: 'corp.example' });
    const client = async (path: string, trustDomain: string) => {
      const pem = await issueClient(ca, path, { trustDomain });
      const http = createControlHttp({ ca: file('ca2.crt', ca.cert), cert: file(`${trustDomain}.crt`, pem.cert), key: file(`${trustDomain}.key`, pem.key) }, log);
      try {
        const res = await http.fetch(`${control.url}/v1/whoami`);
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      } finally {
        await http.close();
      }
    };
    try {
      expect(control.url).toMatch(/^https:/);
      expect(await client('viewer/alice', 'corp.example')).toEqual({ status: 200, body: expect.objectContaining({ role: 'viewer', name: 'alice', via: 'certificate' }) });
      const other = await client('viewer/alice', 'arus');
      expect(other.status).toBe(403);
      expect(other.body.error).toMatch(/outside the trust domain spiffe:\/\/corp\.example\//);
    } finally {
      await control.stop();
      tls.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
