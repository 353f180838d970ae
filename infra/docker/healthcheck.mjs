#!/usr/bin/env node
// Container health check for every Arus role, with no tool but node.
//   HEALTHCHECK_URL=http://127.0.0.1:8080/healthz    (default: control's admin API)
//   HEALTHCHECK_URL=https://127.0.0.1:8000/metrics   (a balancer serving TLS)
//   HEALTHCHECK_URL=dns+tcp://127.0.0.1:53           (any well-formed DNS reply over TCP)
// For https: HEALTHCHECK_CA is the PEM CA the listener's certificate must chain
// to; HEALTHCHECK_CERT and HEALTHCHECK_KEY a client certificate, for a listener
// that requires one (control under mutual TLS). The certificate is verified,
// as every other client of the listener verifies it: a health check that
// passes on a wrong certificate would hide the outage it exists to show.
// Exit 0 healthy, 1 not (Docker's convention).
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = Number(process.env.HEALTHCHECK_TIMEOUT_MS ?? 2000);

/** HEALTHCHECK_CA, HEALTHCHECK_CERT and HEALTHCHECK_KEY, read as TLS options (undefined when unset). */
export function tlsFromEnv(env = process.env) {
  const file = (name) => (env[name] ? readFileSync(env[name]) : undefined);
  return { ca: file('HEALTHCHECK_CA'), cert: file('HEALTHCHECK_CERT'), key: file('HEALTHCHECK_KEY') };
}

export async function check(target, timeoutMs = TIMEOUT_MS, tls = tlsFromEnv()) {
  const url = new URL(target);
  if (url.protocol === 'http:' || url.protocol === 'https:') return httpGet(url, timeoutMs, url.protocol === 'https:' ? tls : undefined);
  if (url.protocol === 'dns+tcp:') return dnsOverTcp(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 53), timeoutMs);
  throw new Error(`unsupported health-check URL ${target}`);
}

/** GET url: a 2xx within the timeout is healthy. */
function httpGet(url, timeoutMs, tls) {
  const request = tls ? httpsRequest : httpRequest;
  const options = { method: 'GET', agent: false, signal: AbortSignal.timeout(timeoutMs), ...(tls ? { ...tls, minVersion: 'TLSv1.2' } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      res.resume();
      if (res.statusCode >= 200 && res.statusCode < 300) resolve();
      else reject(new Error(`${url.href}: HTTP ${res.statusCode}`));
    });
    req.once('error', (err) => reject(new Error(`${url.href}: ${err.code ? `${err.code} ` : ''}${err.message}`)));
    req.end();
  });
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
