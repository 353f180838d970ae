// The DNS servers' counters in /metrics: read at scrape time from every server observed, summed.
import { describe, expect, it } from 'vitest';
import { createDnsServerStats, type DnsServerStats } from '../dns/server.js';
import { createMetrics } from './metrics.js';

const stats = (s: Partial<DnsServerStats> = {}): DnsServerStats => ({ ...createDnsServerStats(), ...s });

describe('observeDnsServer', () => {
  it('exposes every server counter, summed over the servers observed (one per worker), read at each scrape', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const a = stats({ udpMessages: 10, tcpMessages: 4, tcpConnections: 3, tcpOpen: 2, tcpRejected: 1, tcpEvicted: 5, tcpPipelined: 2, tcpIdleClosed: 1, tcpBadFrames: 1 });
    const b = stats({ udpMessages: 5, tcpMessages: 1, tcpConnections: 1, tcpOpen: 1, tcpEvicted: 1, tcpSlowClosed: 2, errors: 3 });
    metrics.observeDnsServer(a);
    metrics.observeDnsServer(b);
    metrics.observeDnsServer(a); // once is enough
    const text = await metrics.text();
    for (const line of [
      'arus_dns_udp_messages_total 15',
      'arus_dns_tcp_messages_total 5',
      'arus_dns_tcp_connections_total 4',
      'arus_dns_tcp_connections_open 3',
      'arus_dns_tcp_refused_total 1',
      'arus_dns_tcp_evicted_total 6',
      'arus_dns_tcp_pipelined_total 2',
      'arus_dns_tcp_closed_total{reason="idle"} 1',
      'arus_dns_tcp_closed_total{reason="slow"} 2',
      'arus_dns_tcp_closed_total{reason="bad_frame"} 1',
      'arus_dns_server_errors_total 3',
    ])
      expect(text).toContain(`\n${line}\n`);
    expect(text).toContain('# TYPE arus_dns_tcp_connections_open gauge');
    expect(text).toContain('# TYPE arus_dns_tcp_evicted_total counter');
    // The gauge goes down as connections close; counters follow the live objects.
    a.tcpOpen = 0;
    a.tcpEvicted = 9;
    const again = await metrics.text();
    expect(again).toContain('\narus_dns_tcp_connections_open 1\n');
    expect(again).toContain('\narus_dns_tcp_evicted_total 10\n');
  });

  it('with no server observed, every series is 0', async () => {
    const text = await createMetrics({ defaultMetrics: false }).text();
    expect(text).toContain('\narus_dns_tcp_connections_open 0\n');
    expect(text).toContain('\narus_dns_udp_messages_total 0\n');
  });
});
