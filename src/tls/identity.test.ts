import { describe, expect, it } from 'vitest';
import { identityOf } from './identity.js';

const cert = (san: string, cn?: string) => ({ subjectaltname: san, subject: { CN: cn } as never });

describe('identityOf: the identity a client certificate names', () => {
  it.each([
    ['URI:spiffe://arus/probe/jkt/jkt-1', { role: 'probe', name: 'jkt-1', agent: 'jkt-1', region: 'jkt', via: 'certificate' }],
    ['DNS:x.example, URI:spiffe://arus/balancer/sg', { role: 'balancer', name: 'balancer-sg', region: 'sg', via: 'certificate' }],
    ['URI:spiffe://arus/dns/dns-sg-1', { role: 'dns', name: 'dns-sg-1', node: 'dns-sg-1', via: 'certificate' }],
    ['URI:spiffe://arus/operator/alice', { role: 'operator', name: 'alice', via: 'certificate' }],
  ])('%s', (san, principal) => {
    expect(identityOf(cert(san))).toEqual({ principal });
  });

  it('falls back to the CN written as a path', () => {
    expect(identityOf(cert('DNS:probe.example', 'probe/bkk/bkk-2'))).toEqual({ principal: { role: 'probe', name: 'bkk-2', agent: 'bkk-2', region: 'bkk', via: 'certificate' } });
  });

  it('names none for a certificate with neither form (a person presenting a token as well)', () => {
    expect(identityOf(cert('DNS:laptop.example', 'alice'))).toBeUndefined();
  });

  it.each([
    ['URI:spiffe://arus/probe/jkt-1', /a probe certificate names spiffe:\/\/<trust domain>\/probe\/<region>\/<agent>/],
    ['URI:spiffe://arus/root/x', /"root" is not a role/],
    ['URI:spiffe://other/probe/jkt/jkt-1', /outside the trust domain spiffe:\/\/arus\//],
    ['URI:spiffe://arus/probe/jkt/bad id', /--agent must be/],
    ['URI:spiffe://arus/balancer/', /a balancer certificate names/],
  ])('refuses %s with the reason', (san, reason) => {
    const id = identityOf(cert(san));
    expect(id && 'error' in id ? id.error : '').toMatch(reason);
  });

  it('reads another trust domain when told', () => {
    expect(identityOf(cert('URI:spiffe://corp.example/dns/n1'), 'corp.example')).toEqual({ principal: { role: 'dns', name: 'n1', node: 'n1', via: 'certificate' } });
  });
});
