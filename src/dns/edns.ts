// EDNS(0) in a query (RFC 6891): the OPT record's payload size, DO bit and
// version, and its options, of which the only one read is Client Subnet
// (RFC 7871 §6), and only one of it. Also what the client's payload size means
// for the size of our UDP reply.

import { formatAddress } from './address.js';
import { CLASSIC_UDP_SIZE, OPTION_ECS, RCODE, type Query } from './wire.js';

/**
 * Reads the OPT record whose TYPE is at `p` (its RDATA ends at `end`) into
 * `q`. NOERROR; BADVERS for a version above 0 (its options are not read);
 * FORMERR for options that overrun or an ECS option RFC 7871 forbids.
 */
export function readOpt(buf: Buffer, p: number, end: number, q: Query): number {
  const size = (buf[p + 2] << 8) | buf[p + 3];
  q.udpSize = size < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : size;
  q.dnssecOk = (buf[p + 6] & 0x80) !== 0;
  q.edns = true;
  if (buf[p + 5] !== 0) return RCODE.BADVERS;
  return readOptions(buf, p + 10, end, q) ? RCODE.NOERROR : RCODE.FORMERR;
}

// EDNS options; the only one we read is ECS (RFC 7871 §6), and only one of it.
function readOptions(buf: Buffer, p: number, end: number, q: Query): boolean {
  while (p < end) {
    if (p + 4 > end) return false;
    const code = (buf[p] << 8) | buf[p + 1];
    const optlen = (buf[p + 2] << 8) | buf[p + 3];
    const data = p + 4;
    if (data + optlen > end) return false;
    if (code === OPTION_ECS) {
      if (q.ecs >= 0 || optlen < 4) return false;
      const family = (buf[data] << 8) | buf[data + 1];
      const source = buf[data + 2];
      const max = family === 1 ? 32 : family === 2 ? 128 : -1;
      if (max < 0 || source > max) return false;
      const octets = (source + 7) >> 3;
      if (optlen !== 4 + octets) return false;
      // Bits beyond SOURCE PREFIX-LENGTH must be zero.
      if (source & 7 && buf[data + 4 + octets - 1] & (0xff >> (source & 7))) return false;
      q.ecs = data;
      q.ecsLength = optlen;
      q.ecsFamily = family;
      q.ecsSourcePrefix = source;
    }
    p = data + optlen;
  }
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
