// The DNS metrics: read from the responders' and servers' plain counters at
// scrape time, summed over every one observed, so a query never touches prom-client.
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import type { Responder } from '../dns/responder.js';
import { DECISION_BUCKETS, QTYPE_LABELS, type ResponderStats } from '../dns/responder-stats.js';
import type { DnsServerStats } from '../dns/server.js';

/** `ResponderStats` fields by rcode label. */
const RCODES = [
  ['NOERROR', 'noerror'],
  ['FORMERR', 'formerr'],
  ['SERVFAIL', 'servfail'],
  ['NXDOMAIN', 'nxdomain'],
  ['NOTIMP', 'notimp'],
  ['REFUSED', 'refused'],
  ['BADVERS', 'badvers'],
] as const satisfies readonly (readonly [string, keyof ResponderStats])[];

/** Registers the `dns_*` metrics on `registry`; returns how a responder is added to what they read. */
export function registerDnsMetrics(prefix: string, registry: Registry): (responder: Responder) => void {
  const registers = [registry];
  const responders = new Set<Responder>();
  const stats = () => [...responders].map((r) => r.stats);

  /** A counter whose values are read from the responders at scrape time. */
  function scraped<L extends string>(name: string, help: string, labelNames: readonly L[], read: (add: (labels: Record<L, string>, value: number) => void) => void) {
    const counter: Counter<L> = new Counter<L>({
      name: prefix + name,
      help,
      labelNames,
      registers,
      collect: () => {
        counter.reset();
        read((labels, value) => counter.inc(labels, value));
      },
    });
  }
  const total = (field: 'truncated' | 'dropped' | 'errors' | 'emptyAnswers' | 'rrlDropped' | 'rrlSlipped') => stats().reduce((n, s) => n + s[field], 0);

  scraped('dns_queries_total', 'DNS queries answered, by response code.', ['rcode'], (add) => {
    for (const [rcode, field] of RCODES) add({ rcode }, stats().reduce((n, s) => n + s[field], 0));
  });
  scraped('dns_queries_by_type_total', 'DNS queries whose question could be read, by QTYPE.', ['qtype'], (add) => {
    QTYPE_LABELS.forEach((qtype, i) => add({ qtype }, stats().reduce((n, s) => n + (s.byType[i] ?? 0), 0)));
  });
  scraped('dns_answers_total', 'A and AAAA answers for service names, by the region chosen to serve them.', ['region'], (add) => {
    const byRegion = new Map<string, number>();
    for (const s of stats()) s.answerRegions.forEach((region, i) => byRegion.set(region, (byRegion.get(region) ?? 0) + s.answersByRegion[i]));
    for (const [region, n] of byRegion) add({ region }, n);
  });
  scraped('dns_empty_answers_total', 'A and AAAA answers for service names with no address (no region could serve; fail-closed).', [], (add) => add({}, total('emptyAnswers')));
  scraped('dns_truncated_total', 'UDP replies sent empty with TC set (the client retries over TCP).', [], (add) => add({}, total('truncated')));
  scraped('dns_dropped_total', 'DNS messages given no reply (shorter than a header, or not a query).', [], (add) => add({}, total('dropped')));
  scraped('dns_rrl_limited_total', 'UDP replies held back by response rate limiting: dropped, or slipped (sent empty with TC set).', ['action'], (add) => {
    add({ action: 'dropped' }, total('rrlDropped'));
    add({ action: 'slipped' }, total('rrlSlipped'));
  });
  scraped('dns_errors_total', 'Exceptions while answering a DNS query (each answered SERVFAIL).', [], (add) => add({}, total('errors')));
  // A histogram prom-client does not fill itself: the responders' fixed buckets, read and summed at scrape time.
  registry.registerMetric(
    scrapedHistogram(prefix + 'dns_decision_seconds', 'Time spent in steer() deciding an answer (answer-cache misses only).', DECISION_BUCKETS, () => {
      const counts = DECISION_BUCKETS.map(() => 0).concat(0);
      let sum = 0;
      for (const s of stats()) {
        s.decisionBuckets.forEach((n, i) => (counts[i] += n));
        sum += s.decisionSeconds;
      }
      return { counts, sum };
    }),
  );

  return (responder) => void responders.add(responder);
}

/** Counters of the server's `DnsServerStats` fields, by metric name (after the prefix). */
const SERVER_COUNTERS = [
  ['dns_udp_messages_total', 'udpMessages', 'DNS messages received over UDP.'],
  ['dns_tcp_messages_total', 'tcpMessages', 'DNS messages received over TCP.'],
  ['dns_tcp_connections_total', 'tcpConnections', 'TCP connections accepted.'],
  ['dns_tcp_refused_total', 'tcpRejected', 'TCP connections refused at a connection cap (all, or per client address) with none idle to close for them.'],
  ['dns_tcp_evicted_total', 'tcpEvicted', 'Idle TCP connections closed to admit a new one at a connection cap (RFC 7766 6.2.3).'],
  ['dns_tcp_pipelined_total', 'tcpPipelined', 'TCP queries that arrived before the one ahead of them on their connection was answered.'],
  ['dns_server_errors_total', 'errors', 'Socket errors and exceptions caught in the DNS listeners.'],
] as const satisfies readonly (readonly [string, keyof DnsServerStats, string])[];

/** Why the server closed TCP connections, by `reason` label. */
const CLOSED = [
  ['idle', 'tcpIdleClosed'],
  ['slow', 'tcpSlowClosed'],
  ['bad_frame', 'tcpBadFrames'],
] as const satisfies readonly (readonly [string, keyof DnsServerStats])[];

/**
 * Registers the DNS servers' metrics (`dns_udp_*`, `dns_tcp_*`) on `registry`;
 * returns how a server's `stats` is added to what they read at every scrape.
 */
export function registerDnsServerMetrics(prefix: string, registry: Registry): (stats: DnsServerStats) => void {
  const registers = [registry];
  const observed = new Set<DnsServerStats>();
  const total = (field: keyof DnsServerStats) => [...observed].reduce((n, s) => n + (s[field] ?? 0), 0);
  for (const [name, field, help] of SERVER_COUNTERS) {
    const counter: Counter = new Counter({
      name: prefix + name,
      help,
      registers,
      collect: () => {
        counter.reset();
        counter.inc(total(field));
      },
    });
  }
  const closed: Counter<'reason'> = new Counter({
    name: prefix + 'dns_tcp_closed_total',
    help: 'TCP connections closed by the server, by reason: idle (the idle timeout in force), slow (a message not whole within its deadline), bad_frame (not DNS).',
    labelNames: ['reason'],
    registers,
    collect: () => {
      closed.reset();
      for (const [reason, field] of CLOSED) closed.inc({ reason }, total(field));
    },
  });
  new Gauge({
    name: prefix + 'dns_tcp_connections_open',
    help: 'TCP connections open now.',
    registers,
    collect() {
      this.set(total('tcpOpen'));
    },
  });
  return (stats) => void observed.add(stats);
}

/** A histogram whose buckets (non-cumulative counts, one more than `bounds`) and sum are read at scrape time. */
function scrapedHistogram(name: string, help: string, bounds: readonly number[], read: () => { counts: number[]; sum: number }): Metric {
  const collector = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset() {},
    get() {
      const { counts, sum } = read();
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      let cumulative = 0;
      bounds.forEach((le, i) => {
        cumulative += counts[i];
        values.push({ labels: { le }, value: cumulative, metricName: `${name}_bucket` });
      });
      cumulative += counts[bounds.length];
      values.push({ labels: { le: '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
      values.push({ labels: {}, value: sum, metricName: `${name}_sum` });
      values.push({ labels: {}, value: cumulative, metricName: `${name}_count` });
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values });
    },
  };
  // The registry only needs name, help, type, get() and reset(): the shape prom-client's own metrics have.
  return collector as unknown as Metric;
}
