import type { EndpointState, RegionState, Snapshot } from '../snapshot/snapshot.js';

/** What we know about a client: added by the geo step, never decided there. */
export type ClientFacts = {
  /** The address that was located: the ECS subnet's address, else the resolver's. */
  readonly ip: string;
  /** Where the address came from. */
  readonly source: 'ecs' | 'resolver';
  /** ISO 3166-1 alpha-2, when known. */
  readonly country?: string;
  readonly location?: { readonly lat: number; readonly lon: number };
  /** A region forced by a `nets` override. */
  readonly region?: string;
  /**
   * Prefix length of the widest network around `ip` in which every address gets
   * the same facts: the ECS scope to return. Never wider than the truth.
   */
  readonly scope: number;
  /** How the facts were found, for traces ("nets 10.0.0.0/8", "geoip ID /11", "unknown"). */
  readonly via: string;
};

export type SteerQuery = {
  readonly service: string;
  readonly family: 4 | 6;
  /** `<region>.<service>.<apex>`: answer from this region only. */
  readonly pinnedRegion?: string;
  readonly client: ClientFacts;
};

/** Randomness enters steering only through this argument. */
export type Random = () => number;

export type Candidate = {
  readonly region: RegionState;
  /** Endpoints of the queried family in this region, health still attached. */
  readonly endpoints: readonly EndpointState[];
  /** Great-circle distance to the client, when known (km). */
  readonly distanceKm?: number;
};

/**
 * One chosen endpoint: `address` its name (its address or hostname),
 * `addresses` the A/AAAA records it answers, `cname` the name a hostname
 * endpoint without flatten is answered with instead.
 */
export type Answer = { readonly address: string; readonly region: string; readonly zone: string; readonly addresses: readonly string[]; readonly cname?: string };

export type Decision = {
  /** Endpoints to answer, in order; empty means NODATA. The first a CNAME: the answer is that CNAME alone. */
  readonly answers: readonly Answer[];
  /** Region that serves the answer, if any. */
  readonly region?: string;
  readonly ttl: number;
  /** ECS scope prefix length for the reply. */
  readonly scope: number;
  readonly failedOpen: boolean;
  readonly trace: readonly string[];
};

/** Shared state threaded through the filter chain. */
export type SteerContext = {
  readonly query: SteerQuery;
  readonly snapshot: Snapshot;
  readonly random: Random;
  readonly trace: string[];
  failedOpen: boolean;
  /** Set by the capacity filter when the first-ranked region sheds clients. */
  shedding?: Shedding;
};

/** What the capacity filter did, for the decision's scope and TTL. */
export type Shedding = {
  /** The first-ranked region, shedding a share of its clients. */
  readonly region: string;
  /** Its share to shed, 0 < share ≤ 1. */
  readonly share: number;
  /** The region taking the shed clients; undefined when none has headroom. */
  readonly to?: string;
  /**
   * Prefix length of the client network the split is decided over (24 or 56),
   * when the answer depends on it (some but not all clients move); the reply's
   * ECS scope must be at least this.
   */
  readonly bucketPrefix?: number;
};

/** One step of the chain: takes candidates, returns fewer or reordered ones. */
export type Filter = (candidates: Candidate[], ctx: SteerContext) => Candidate[];
