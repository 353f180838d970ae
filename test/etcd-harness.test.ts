// The etcd harness (test/helpers/etcd.ts) itself: a real 3-member cluster of
// Debian's etcd on loopback, client and peer links over TLS with client
// certificates; members that can be killed, restarted on their data, paused;
// and nothing left behind. Prints the figures the replicated control plane's
// tests lean on: start-up time and a new leader after the leader is killed.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './helpers/arus.js';
import { etcdMissing, startEtcdCluster, type EtcdCluster } from './helpers/etcd.js';

// In CI a missing etcd is a failure, not a skip.
const enabled = etcdMissing === undefined || Boolean(process.env.CI);
if (!enabled) console.warn(`etcd harness test skipped: ${etcdMissing}`);

const run = ([cmd, ...args]: string[]) =>
  new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(cmd, args, { env: { ...process.env, ETCDCTL_API: '3' } }, (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr })),
  );

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A TLS handshake with `port` that trusts `ca` and presents `client` if given: the error it ends with, or 'ok'. */
function handshake(port: number, ca: string, client?: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca: readFileSync(ca), servername: 'localhost', ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) });
    // TLS 1.3: the server's verdict on our certificate arrives after our side's handshake is done.
    s.once('secureConnect', () => {
      s.write('GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n');
      s.once('data', () => {
        s.destroy();
        resolve('ok');
      });
    });
    s.once('error', (e) => resolve(e.message));
    s.setTimeout(10_000, () => {
      s.destroy();
      resolve('timeout');
    });
  });
}

describe.skipIf(!enabled)('etcd harness: a real 3-member cluster over TLS', () => {
  let cluster: EtcdCluster;
  let startMs: number;

  beforeAll(async () => {
    const t = Date.now();
    cluster = await startEtcdCluster();
    startMs = Date.now() - t;
    console.log(`3 etcd members (TLS, certificates made) healthy in ${startMs} ms`);
  }, 90_000);
  afterAll(() => cluster?.stop());

  it('runs 3 members on loopback, each with its own data dir and ports, client and peer URLs https, one leader', async () => {
    expect(cluster.members).toHaveLength(3);
    expect(cluster.endpoints).toEqual(cluster.members.map((m) => m.clientUrl));
    for (const m of cluster.members) {
      expect(m.clientUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(m.peerUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(existsSync(`${m.dataDir}/member`)).toBe(true);
      expect(alive(m.proc?.pid)).toBe(true);
    }
    expect(new Set(cluster.members.flatMap((m) => [m.clientUrl, m.peerUrl])).size).toBe(6);
    expect(new Set(cluster.members.map((m) => m.dataDir)).size).toBe(3);
    expect(cluster.members.map((m) => m.name)).toContain(await cluster.leader());

    const list = await cluster.ctl(['member', 'list', '--write-out=json']);
    expect(list.code).toBe(0);
    const members = (JSON.parse(list.stdout) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] }).members;
    expect(members.map((m) => m.name).sort()).toEqual(['etcd-0', 'etcd-1', 'etcd-2']);
    for (const m of members) {
      expect(m.peerURLs[0]).toMatch(/^https:/);
      expect(m.clientURLs[0]).toMatch(/^https:/);
    }
    expect((await cluster.ctl(['put', 'harness/a', '1'])).stdout.trim()).toBe('OK');
    expect((await cluster.ctl(['get', 'harness/a', '--print-value-only'])).stdout.trim()).toBe('1');
  });

  it('requires a client certificate from its CA on the client port, and on the peer port', async () => {
    const m = cluster.members[0];
    const clientPort = Number(new URL(m.clientUrl).port);
    const peerPort = Number(new URL(m.peerUrl).port);
    const ours = { cert: cluster.clientCert!, key: cluster.clientKey! };
    expect(await handshake(clientPort, cluster.ca!, ours)).toBe('ok');
    // Go's TLS ends a handshake without a client certificate with alert 116 (certificate required, TLS 1.3).
    for (const port of [clientPort, peerPort]) expect(await handshake(port, cluster.ca!)).toMatch(/certificate required|bad certificate|handshake failure/);
    // etcdctl without --cert/--key: refused.
    const bare = await run(['etcdctl', `--endpoints=${m.clientUrl}`, `--cacert=${cluster.ca}`, '--command-timeout=3s', 'get', 'harness/a']);
    expect(bare.code).not.toBe(0);
    expect(bare.stderr).toMatch(/context deadline exceeded|certificate required|bad certificate/);
  });

  it('kill -9 of the leader: another member leads, writes go on, and the killed one restarts on its data and catches up', async () => {
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m.name === leader)!;
    const killedAt = Date.now();
    await victim.kill9();
    expect(victim.proc).toBeUndefined();
    const next = await until(() => cluster.leader(), (l) => l !== undefined && l !== leader, 20_000, 50);
    const electedMs = Date.now() - killedAt;
    console.log(`leader ${leader} killed: ${next} leads ${electedMs} ms later`);
    expect((await cluster.ctl(['put', 'harness/while-down', 'yes'])).code).toBe(0);

    await victim.start();
    await cluster.waitHealthy();
    // Its own copy (a serializable read answers from that member alone) has the write it missed.
    await until(async () => (await cluster.ctl(['get', 'harness/while-down', '--print-value-only', '--consistency=s'], [victim.clientUrl])).stdout.trim(), (v) => v === 'yes', 20_000);
    expect((await cluster.ctl(['get', 'harness/a', '--print-value-only', '--consistency=s'], [victim.clientUrl])).stdout.trim()).toBe('1');
  });

  it('pause() freezes a member (SIGSTOP: it answers nothing), resume() brings it back', async () => {
    const leader = await cluster.leader();
    const m = cluster.members.find((x) => x.name !== leader)!; // a follower: the other two keep their leader
    m.pause();
    try {
      const r = await cluster.ctl(['endpoint', 'status', '--command-timeout=1s'], [m.clientUrl]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/deadline exceeded/i);
      // The other two still have a quorum.
      const put = await cluster.ctl(['put', 'harness/paused', 'ok'], cluster.members.filter((x) => x !== m).map((x) => x.clientUrl));
      expect(put, put.stderr).toMatchObject({ code: 0 });
    } finally {
      m.resume();
    }
    await until(async () => (await cluster.ctl(['endpoint', 'status', '--command-timeout=2s'], [m.clientUrl])).code, (c) => c === 0, 20_000);
    await cluster.waitHealthy();
  });

  it("a member that cannot start fails start() with its name and the end of its log", async () => {
    const m = cluster.members[1];
    await m.stop();
    // Its client port taken: etcd exits at once.
    const sockets = new Set<Socket>();
    const squatter: Server = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => squatter.listen(Number(new URL(m.clientUrl).port), '127.0.0.1', r));
    try {
      const err = await m.start().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(new RegExp(`^etcd member ${m.name} exited while starting`));
      expect(err?.message).toContain('address already in use');
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => squatter.close(r));
    }
    await m.start();
    await cluster.waitHealthy();
  });
});

describe.skipIf(!enabled)('etcd harness: stop() and plain text', () => {
  it('stop() ends every member and removes the directory', async () => {
    const c = await startEtcdCluster({ members: 3 });
    const pids = c.members.map((m) => m.proc?.pid);
    c.members[0].pause(); // even a paused one
    await c.stop();
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(existsSync(c.dir)).toBe(false);
  }, 60_000);

  it('tls: false runs http:// members without certificates', async () => {
    const c = await startEtcdCluster({ members: 1, tls: false });
    try {
      expect(c.endpoints[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(c.ca).toBeUndefined();
      expect((await c.ctl(['put', 'plain', 'yes'])).code).toBe(0);
      const res = await fetch(`${c.endpoints[0]}/version`);
      expect(((await res.json()) as { etcdserver: string }).etcdserver).toMatch(/^3\.4\./);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
