#!/usr/bin/env node
// Container health check for every Arus role, with no tool but node.
//   HEALTHCHECK_URL=http://127.0.0.1:8080/healthz   (default: control's admin API)
//   HEALTHCHECK_URL=http://127.0.0.1:9153/metrics   (a DNS node's metrics listener)
//   HEALTHCHECK_URL=dns+tcp://127.0.0.1:53          (any well-formed DNS reply over TCP)
// Exit 0 healthy, 1 not (Docker's convention).
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = Number(process.env.HEALTHCHECK_TIMEOUT_MS ?? 2000);

export async function check(target, timeoutMs = TIMEOUT_MS) {
  const url = new URL(target);
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`${target}: HTTP ${res.status}`);
    return;
  }
  if (url.protocol === 'dns+tcp:') return dnsOverTcp(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 53), timeoutMs);
  throw new Error(`unsupported health-check URL ${target}`);
}

/** Sends `. IN SOA` over TCP; an authoritative server answers (REFUSED is an answer too). */
function dnsOverTcp(host, port, timeoutMs) {
  const id = Math.floor(Math.random() * 0xffff);
  // Header (id, flags 0, QDCOUNT 1) + root name + QTYPE SOA (6) + QCLASS IN (1).
  const msg = Buffer.from([id >> 8, id & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]);
  const frame = Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let buf = Buffer.alloc(0);
    const fail = (err) => (sock.destroy(), reject(err));
    sock.setTimeout(timeoutMs, () => fail(new Error(`dns+tcp://${host}:${port}: no reply in ${timeoutMs} ms`)));
    sock.once('error', fail);
    sock.once('connect', () => sock.write(frame));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 + 12) return;
      const replyId = buf.readUInt16BE(2);
      const isResponse = (buf[4] & 0x80) !== 0;
      sock.destroy();
      if (replyId === id && isResponse) resolve();
      else reject(new Error(`dns+tcp://${host}:${port}: not a reply to our query`));
    });
    sock.once('end', () => fail(new Error(`dns+tcp://${host}:${port}: closed without a reply`)));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = process.env.HEALTHCHECK_URL ?? 'http://127.0.0.1:8080/healthz';
  check(target).then(
    () => process.exit(0),
    (err) => {
      console.error(`unhealthy: ${err.message}`);
      process.exit(1);
    },
  );
}
