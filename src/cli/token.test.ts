import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../db/database.js';
import { createTokenStore, hashToken } from '../db/tokens.js';
import { tokenCreate, TokenError, tokenList, tokenRevoke } from './token.js';

let db: Db;
beforeEach(() => {
  db = openDatabase(':memory:');
});
afterEach(() => db.$client.close());

const tokenIn = (text: string) => /\barus_[A-Za-z0-9_-]{43}\b/.exec(text)?.[0];

describe('arus token', () => {
  it('create prints the token once, with a warning, and the token works', () => {
    const out = tokenCreate(db, { role: 'viewer', name: 'grafana' });
    const token = tokenIn(out);
    expect(token).toBeDefined();
    expect(out.split(token!)).toHaveLength(2);
    expect(out).toMatch(/created token 1 "grafana" with role viewer/);
    expect(out).toMatch(/will not be shown again/);
    expect(createTokenStore(db).verify(token!)).toEqual({ role: 'viewer', name: 'grafana', tokenId: 1 });
  });

  it('create names the token after its role when no name is given', () => {
    expect(tokenCreate(db, { role: 'probe' })).toMatch(/created token 1 "probe-1" with role probe/);
  });

  it('create refuses an unknown or missing role and a bad name', () => {
    expect(() => tokenCreate(db, { role: 'root' })).toThrow(TokenError);
    expect(() => tokenCreate(db, { role: 'root' })).toThrow('--role must be one of admin, viewer, probe, dns, not "root"');
    expect(() => tokenCreate(db, { role: undefined })).toThrow('--role must be one of admin, viewer, probe');
    expect(() => tokenCreate(db, { role: 'admin', name: '' })).toThrow(TokenError);
    expect(tokenList(db)).toMatch(/^no tokens/);
  });

  it('list shows a table without tokens or hashes, revoked ones marked', () => {
    const a = tokenIn(tokenCreate(db, { role: 'admin', name: 'ops' }))!;
    const b = tokenIn(tokenCreate(db, { role: 'viewer', name: 'dashboard' }))!;
    createTokenStore(db).verify(b);
    tokenRevoke(db, '1');
    const out = tokenList(db);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^id\s+name\s+role\s+created \(UTC\)\s+last used \(UTC\)\s+revoked \(UTC\)$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^1\s+ops\s+admin\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(lines[2]).toMatch(/^2\s+dashboard\s+viewer\s+\S+ \S+\s+\S+ \S+\s+-$/);
    for (const secret of [a, b, hashToken(a), hashToken(b)]) expect(out).not.toContain(secret);
  });

  it('revoke refuses the token from then on; again is not an error; an unknown id is', () => {
    const token = tokenIn(tokenCreate(db, { role: 'admin', name: 'ops' }))!;
    expect(tokenRevoke(db, '1')).toBe('revoked token 1 "ops" (admin): it is refused from now on');
    expect(createTokenStore(db).verify(token)).toBeUndefined();
    expect(tokenRevoke(db, 1)).toBe('token 1 "ops" was already revoked');
    expect(() => tokenRevoke(db, '2')).toThrow(new TokenError('no token 2 (see arus token list)'));
    for (const bad of ['x', '-1', '0', '1.5', '']) expect(() => tokenRevoke(db, bad), bad).toThrow(/is not a token id/);
  });
});
