// What we know about the client of a query, before anything is answered: its
// location (ECS option, else the resolver's address, v4-mapped taken as IPv4)
// from the locator, once per client network and snapshot, and the *located
// network*: the address masked to what the facts depend on, which keys the
// answer sets (steered-answers.ts).

import { BUCKET_PREFIX } from '../steer/filters/capacity.js';
import type { ClientFacts } from '../steer/types.js';
import { formatAddress, maskAddress, parseAddress } from './address.js';
import { ecsAddress } from './edns.js';
import { remember } from './served-cache.js';
import type { AnswerSet, Client, Served } from './served.js';
import type { Query } from './wire.js';

/** The client of `q`, from the snapshot's cache or located now; `resolver` is the address the query came from. */
export type ClientLocator = (s: Served, packet: Buffer, q: Query, resolver: string) => Client;

export function createClientLocator(maxClients: number): ClientLocator {
  return function locate(s: Served, packet: Buffer, q: Query, resolver: string): Client {
    const ecs = q.ecs >= 0 && q.ecsSourcePrefix > 0;
    let key4 = -1;
    let key = '';
    let client: Client | undefined;
    if (ecs && q.ecsFamily === 1) {
      // The ADDRESS octets and the prefix as one number: a small integer for /24 and shorter.
      let n = 0;
      for (let i = q.ecs + 4, end = q.ecs + q.ecsLength; i < end; i++) n = n * 256 + packet[i];
      key4 = n * 64 + q.ecsSourcePrefix;
      client = s.clients4.get(key4);
    } else {
      // ECS keys start with the FAMILY octets (0x00), resolver keys with an address's text: they cannot collide.
      key = ecs ? packet.toString('latin1', q.ecs, q.ecs + q.ecsLength) : resolver;
      client = s.clients.get(key);
    }
    if (client) return client;
    let ip: string;
    let prefix: number;
    if (ecs) {
      ip = ecsAddress(packet, q);
      prefix = q.ecsSourcePrefix;
    } else {
      // A v4-mapped address (dual-stack socket) is the IPv4 client it maps.
      ip = /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(resolver) ? resolver.slice(7) : resolver;
      prefix = ip.includes(':') ? 128 : 32;
    }
    const facts = s.locator.locate(ip, prefix, ecs ? 'ecs' : 'resolver');
    client = { facts, net: network(facts, prefix, s.shedding), sets: new Array<AnswerSet | undefined>(s.zone.dynamic.length * 2) };
    if (key4 >= 0) remember(s.clients4, key4, client, maxClients);
    else remember(s.clients, key, client, maxClients);
    return client;
  };
}

/**
 * The client network as located: every address in it gets the same facts.
 * While a region sheds clients by capacity, the answer also depends on the
 * client's /24 (/56) bucket, so the network is never wider than that.
 */
function network(facts: ClientFacts, prefix: number, shedding: boolean): string {
  const bucket = facts.ip.includes(':') ? BUCKET_PREFIX[6] : BUCKET_PREFIX[4];
  const bits = Math.min(shedding ? Math.max(facts.scope, bucket) : facts.scope, prefix);
  const bytes = parseAddress(facts.ip);
  if (!bytes) return `${facts.source}:${facts.ip}/${prefix}`;
  return `${facts.source}:${formatAddress(maskAddress(bytes, bits))}/${bits}`;
}
