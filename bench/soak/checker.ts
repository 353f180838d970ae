// The checker: asks DNS itself for api A from every subnet in turn (and
// without ECS) every 20 ms and judges each answer — an address dead or
// drained for longer than BUDGET_MS when the query was sent is wrong.
import dgram from 'node:dgram';
import { Packet } from 'dns2';
import { ecs, query } from '../../src/dns/fixtures.js';
import { ALL_SUBNETS, sleep } from '../common.js';
import { BUDGET_MS, random } from './settings.js';
import type { Soak } from './state.js';

/** Judges one reply to a query sent at `sent`: rcode, empty, unknown addresses, and addresses that should be out. */
function judge(soak: Soak, msg: Buffer, sent: number): void {
  const { counts, wrong } = soak;
  const rcode = msg[3] & 0x0f;
  if (rcode === 2) return void counts.dnsServfail++;
  if (rcode !== 0) return void counts.dnsOtherRcode++;
  const addresses = Packet.parse(msg)
    .answers.filter((a) => a.type === Packet.TYPE.A)
    .map((a) => (a as { address: string }).address);
  if (addresses.length === 0) return void counts.dnsEmpty++;
  const now = Date.now();
  for (const a of addresses) {
    const e = soak.byAddress.get(a);
    if (!e) {
      counts.dnsUnknownAddress++;
      continue;
    }
    const since = e.deadSince ?? e.drainedSince;
    if (since === undefined) continue;
    e.seenDuringOutage = Math.max(e.seenDuringOutage ?? 0, sent);
    if (sent - since > BUDGET_MS)
      wrong.push(`${new Date(now).toISOString()} ${a} (${e.zone}) in an answer ${sent - since} ms after it was ${e.deadSince !== undefined ? `made dead (${e.how})` : 'drained'}`);
  }
}

/** Asks for api A from every subnet in turn (and without ECS), every 20 ms, and judges each answer. */
export async function checker(soak: Soak, port: number, end: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  // No timers: when this process lags (the machine is busy), a reply read late is still an answer, with its latency.
  const pending = new Map<number, { sent: number }>();
  socket.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    soak.latencies.push(Date.now() - p.sent);
    judge(soak, msg, p.sent);
  });
  let id = 0;
  let i = 0;
  const sources = [...ALL_SUBNETS, undefined];
  while (Date.now() < end) {
    id = (id + 1) & 0xffff;
    const net = sources[i++ % sources.length];
    const [a, b] = (net ?? '0.0').split('.').map(Number);
    const options = net ? [ecs(1, 24, [a, b, Math.floor(random() * 256)])] : [];
    const packet = query({ id, name: 'api.gslb.example.com', type: 1, opt: { size: 1232, options } });
    const qid = id;
    const old = pending.get(qid);
    if (old) soak.timeouts.push(old.sent); // asked 65,536 queries ago and never answered
    pending.set(qid, { sent: Date.now() });
    soak.counts.checkerQueries++;
    socket.send(packet, port, '127.0.0.1');
    await sleep(20);
  }
  await sleep(2000);
  for (const p of pending.values()) soak.timeouts.push(p.sent);
  soak.counts.dnsTimeouts = soak.timeouts.length;
  socket.close();
}
