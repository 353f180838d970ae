import { describe, expect, it } from 'vitest';
import { isLoopbackHost, PlaintextRefused, requireSecureListener } from './plaintext.js';

describe('plain text off loopback', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.3.2.1', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.5', false],
    ['control.example.com', false],
    ['128.0.0.1', false],
  ])('%s is loopback: %s', (host, loopback) => expect(isLoopbackHost(host)).toBe(loopback));

  it('refuses a plain listener off loopback, naming the flags that fix it', () => {
    expect(() => requireSecureListener('control', { address: '0.0.0.0', port: 8080 }, { tls: false })).toThrow(PlaintextRefused);
    expect(() => requireSecureListener('control', { address: '10.0.0.5', port: 8080 }, { tls: false })).toThrow(/control would listen in plain text on 10\.0\.0\.5:8080.*--tls-cert FILE --tls-key FILE.*--insecure-plaintext/);
  });

  it('lets TLS, loopback, or the operator\'s flag through', () => {
    expect(() => requireSecureListener('control', { address: '0.0.0.0', port: 8080 }, { tls: true })).not.toThrow();
    expect(() => requireSecureListener('control', { address: '127.0.0.1', port: 8080 }, { tls: false })).not.toThrow();
    expect(() => requireSecureListener('control', { address: '::', port: 8080 }, { tls: false, insecurePlaintext: true })).not.toThrow();
  });
});
