import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../log.js';
import { openDatabase, type Db } from '../db/database.js';
import { createTokenStore, hashToken } from '../db/tokens.js';
import type { Values } from './command.js';
import { tokenCommand, tokenCreate, TokenError, tokenList, tokenRevoke } from './token.js';

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
    expect(createTokenStore(db).verify(token!)).toEqual({ role: 'viewer', name: 'grafana', tokenId: 1, via: 'token' });
  });

  it('create names the token after its role, or the identity it is bound to, when no name is given', () => {
    expect(tokenCreate(db, { role: 'viewer' })).toMatch(/created token 1 "viewer-1" with role viewer:/);
    expect(tokenCreate(db, { role: 'probe', agent: 'jkt-1', region: 'jkt' })).toMatch(/created token 2 "jkt-1" with role probe, bound to agent jkt-1, region jkt:/);
  });

  it('create refuses an unknown or missing role and a bad name', () => {
    expect(() => tokenCreate(db, { role: 'root' })).toThrow(TokenError);
    expect(() => tokenCreate(db, { role: 'root' })).toThrow('--role must be one of admin, operator, viewer, probe, balancer, dns, not "root"');
    expect(() => tokenCreate(db, { role: undefined })).toThrow('--role must be one of admin, operator, viewer, probe, balancer, dns');
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
    expect(lines[0]).toMatch(/^id\s+name\s+role\s+bound to\s+created \(UTC\)\s+last used \(UTC\)\s+revoked \(UTC\)$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^1\s+ops\s+admin\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(lines[2]).toMatch(/^2\s+dashboard\s+viewer\s+-\s+\S+ \S+\s+\S+ \S+\s+-$/);
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

  it('create binds a machine token with --agent and --region, --region, or --node, and prints what it speaks for', () => {
    const probe = tokenCreate(db, { role: 'probe', agent: 'jkt-1', region: 'jkt' });
    expect(probe).toMatch(/^created token 1 "jkt-1" with role probe, bound to agent jkt-1, region jkt:$/m);
    expect(createTokenStore(db).verify(tokenIn(probe)!)).toMatchObject({ role: 'probe', agent: 'jkt-1', region: 'jkt' });
    expect(tokenCreate(db, { role: 'balancer', region: 'sg', name: 'lb-sg' })).toMatch(/^created token 2 "lb-sg" with role balancer, bound to region sg:$/m);
    expect(tokenCreate(db, { role: 'dns', node: 'ns1' })).toMatch(/^created token 3 "ns1" with role dns, bound to node ns1:$/m);
    expect(tokenCreate(db, { role: 'operator', name: 'oncall' })).toMatch(/^created token 4 "oncall" with role operator:$/m);

    const lines = tokenList(db).split('\n');
    expect(lines[1]).toMatch(/^1\s+jkt-1\s+probe\s+agent jkt-1, region jkt\s+\d{4}-/);
    expect(lines[2]).toMatch(/^2\s+lb-sg\s+balancer\s+region sg\s+\d{4}-/);
    expect(lines[3]).toMatch(/^3\s+ns1\s+dns\s+node ns1\s+\d{4}-/);
    expect(lines[4]).toMatch(/^4\s+oncall\s+operator\s+-\s+\d{4}-/);
  });

  it.each([
    { input: { role: 'probe' }, error: 'a probe credential names its agent: --agent ID' },
    { input: { role: 'probe', agent: 'jkt-1' }, error: 'a probe credential names its region: --region ID' },
    { input: { role: 'balancer' }, error: 'a balancer credential names its region: --region ID' },
    { input: { role: 'dns' }, error: 'a dns credential names its node: --node ID' },
    { input: { role: 'dns', node: 'ns1', agent: 'jkt-1' }, error: 'a dns credential has no agent (it names node)' },
    { input: { role: 'viewer', region: 'jkt' }, error: 'a viewer credential has no region' },
    { input: { role: 'probe', agent: 'jkt 1', region: 'jkt' }, error: '--agent must be 1 to 100 letters, digits, dots, dashes or underscores' },
  ])('create refuses $input with the reason, and makes no token', ({ input, error }) => {
    expect(() => tokenCreate(db, input)).toThrow(TokenError);
    expect(() => tokenCreate(db, input)).toThrow(error);
    expect(tokenList(db)).toMatch(/^no tokens/);
  });

  it('the command takes --agent, --region and --node from its arguments', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'arus-token-')), 'arus.db');
    const printed: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));
    try {
      // As the entry (src/cli.ts) runs a command: its options parsed strictly.
      const run = async (...args: string[]) =>
        tokenCommand.run(parseArgs({ args: [...args, '--db', file], options: tokenCommand.options, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] }, silentLogger());
      await run('create', '--role', 'probe', '--agent', 'jkt-1', '--region', 'jkt');
      await run('create', '--role', 'balancer', '--region', 'jkt');
      await run('create', '--role', 'dns', '--node', 'dns-1');
      await expect(run('create', '--role', 'probe', '--region', 'jkt')).rejects.toThrow('a probe credential names its agent: --agent ID');
    } finally {
      spy.mockRestore();
    }
    expect(printed.map((p) => p.split('\n')[0])).toEqual([
      'created token 1 "jkt-1" with role probe, bound to agent jkt-1, region jkt:',
      'created token 2 "balancer-jkt" with role balancer, bound to region jkt:',
      'created token 3 "dns-1" with role dns, bound to node dns-1:',
    ]);
    expect(tokenCommand.usage).toContain('arus token create --role probe --agent ID --region ID');
    expect(tokenCommand.usage).toContain('arus token create --role balancer --region ID');
    expect(tokenCommand.usage).toContain('arus token create --role dns --node ID');
  });
});
