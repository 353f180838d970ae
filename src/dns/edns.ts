// EDNS(0) in a query (RFC 6891): the OPT record's payload size, DO bit and
// version, and its options, of which two are read: Client Subnet (RFC 7871
// §6, only one of it) and edns-tcp-keepalive (RFC 7828). Every other option
// (cookies, NSID, padding, unknown codes) is stepped over and never echoed;
// the OPT's Z flags are not read. Also what the client's payload size means
// for the size of our UDP reply.

import { formatAddress } from './address.js';
import { CLASSIC_UDP_SIZE, KEEPALIVE, OPTION_ECS, OPTION_KEEPALIVE, RCODE, type Query } from './wire.js';

/**
 * Reads the OPT record whose TYPE is at `p` (its RDATA ends at `end`) into
 * `q`. NOERROR; BADVERS for a version above 0 (its options are not read);
 * FORMERR for an ECS option RFC 7871 forbids (`q.edns` stays set: the reply
 * has an OPT), or for options that overrun the RDATA (`q.edns` cleared: a
 * broken OPT gets none back).
 */
export function readOpt(buf: Buffer, p: number, end: number, q: Query): number {
  const size = (buf[p + 2] << 8) | buf[p + 3];
  q.udpSize = size < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : size;
  q.dnssecOk = (buf[p + 6] & 0x80) !== 0;
  q.compactOk = (buf[p + 6] & 0x40) !== 0;
  q.edns = true;
  if (buf[p + 5] !== 0) return RCODE.BADVERS;
  const options = readOptions(buf, p + 10, end, q);
  if (options === OPTIONS_OK) return RCODE.NOERROR;
  if (options === OPTIONS_BROKEN) q.edns = false;
  return RCODE.FORMERR;
}

const OPTIONS_OK = 0;
/** An option we read is malformed. */
const OPTIONS_BAD = 1;
/** The options' framing overruns the RDATA. */
const OPTIONS_BROKEN = 2;

function readOptions(buf: Buffer, p: number, end: number, q: Query): number {
  let result = OPTIONS_OK;
  while (p < end) {
    if (p + 4 > end) return OPTIONS_BROKEN;
    const code = (buf[p] << 8) | buf[p + 1];
    const optlen = (buf[p + 2] << 8) | buf[p + 3];
    const data = p + 4;
    if (data + optlen > end) return OPTIONS_BROKEN;
    if (code === OPTION_ECS) {
      if (!readEcs(buf, data, optlen, q)) result = OPTIONS_BAD;
    } else if (code === OPTION_KEEPALIVE) {
      // Whether a TIMEOUT from a client is an error depends on the transport: the responder decides.
      q.keepalive = optlen === 0 ? KEEPALIVE.ASKED : KEEPALIVE.WITH_TIMEOUT;
    }
    p = data + optlen;
  }
  return result;
}

// RFC 7871 §6: one ECS option, family 1 or 2, a source prefix the family allows, as many address octets as it covers, no bits set past it.
function readEcs(buf: Buffer, data: number, optlen: number, q: Query): boolean {
  if (q.ecs >= 0 || optlen < 4) return false;
  const family = (buf[data] << 8) | buf[data + 1];
  const source = buf[data + 2];
  const max = family === 1 ? 32 : family === 2 ? 128 : -1;
  if (max < 0 || source > max) return false;
  const octets = (source + 7) >> 3;
  if (optlen !== 4 + octets) return false;
  if (source & 7 && buf[data + 4 + octets - 1] & (0xff >> (source & 7))) return false;
  q.ecs = data;
  q.ecsLength = optlen;
  q.ecsFamily = family;
  q.ecsSourcePrefix = source;
  return true;
}

/** The ECS option's ADDRESS, zero-padded to a full address, as text. */
export function ecsAddress(buf: Buffer, q: Query): string {
  const octets = q.ecsLength - 4;
  const bytes = new Uint8Array(q.ecsFamily === 1 ? 4 : 16);
  for (let i = 0; i < octets; i++) bytes[i] = buf[q.ecs + 4 + i];
  return formatAddress(bytes);
}

/** The size limit of a reply to `q` over UDP: the client's EDNS size (at least 512), at most ours. */
export function udpLimit(q: Query, ours: number): number {
  if (!q.edns) return CLASSIC_UDP_SIZE;
  return q.udpSize < ours ? q.udpSize : ours < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : ours;
}
