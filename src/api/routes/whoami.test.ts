import { describe, expect, it } from 'vitest';
import { createTokenStore } from '../../db/tokens.js';
import { identityOf } from '../../tls/identity.js';
import { testApi, TOKENS } from '../testing.js';

describe('GET /v1/whoami', () => {
  it.each<{ token: keyof typeof TOKENS; identity: Record<string, string> }>([
    { token: 'admin', identity: { role: 'admin', name: 'test-admin', via: 'token' } },
    { token: 'operator', identity: { role: 'operator', name: 'test-operator', via: 'token' } },
    { token: 'viewer', identity: { role: 'viewer', name: 'test-viewer', via: 'token' } },
    { token: 'probe', identity: { role: 'probe', name: 'test-probe', via: 'token', agent: 'jkt-1', region: 'jkt' } },
    { token: 'balancer', identity: { role: 'balancer', name: 'test-balancer', via: 'token', region: 'jkt' } },
    { token: 'dns', identity: { role: 'dns', name: 'test-dns', via: 'token', node: 'dns-1' } },
  ])("tells a $token token who it is, with the identity it is bound to", async ({ token, identity }) => {
    const res = await testApi().call('GET', '/v1/whoami', { token });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(identity);
  });

  it('tells a stored token its binding, and never its id or secret', async () => {
    const api = testApi();
    const made = createTokenStore(api.db).create({ role: 'probe', agent: 'bkk-2', region: 'bkk' });
    const res = await api.app.request('/v1/whoami', { headers: { authorization: `Bearer ${made.token}` } });
    expect(await res.json()).toEqual({ role: 'probe', name: 'bkk-2', via: 'token', agent: 'bkk-2', region: 'bkk' });
  });

  it("tells a client certificate's holder the identity it names", async () => {
    const api = testApi({ peer: () => identityOf({ subjectaltname: 'URI:spiffe://arus/balancer/sg', subject: {} }) });
    const res = await api.call('GET', '/v1/whoami', { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ role: 'balancer', name: 'balancer-sg', via: 'certificate', region: 'sg' });
  });

  it('is 401 without a credential', async () => {
    const res = await testApi().call('GET', '/v1/whoami', { token: null });
    expect(res.status).toBe(401);
  });
});
