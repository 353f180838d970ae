import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bigConfig, defaultConfig } from '../dns/fixtures.js';
import { decodeSnapshot, encodeSnapshot, type SnapshotDocument } from './document.js';
import { buildSnapshot, endpointKey } from './snapshot.js';

function liveSnapshot() {
  const config = defaultConfig();
  config.regions.find((r) => r.id === 'mnl')!.down = true;
  config.regions.find((r) => r.id === 'sg')!.zones[1].endpoints[0].down = true;
  const jkt = config.regions.find((r) => r.id === 'jkt')!;
  const health = new Map([
    [endpointKey('jkt', jkt.zones[0].id, jkt.zones[0].endpoints[0].address!), { state: 'down' as const, reason: '3 of 4 agents: timeout', transition: false }],
    [endpointKey('jkt', jkt.zones[1].id, jkt.zones[1].endpoints[0].address!), { state: 'up' as const, reason: '4 of 4 agents', transition: true }],
  ]);
  return buildSnapshot(config, 42, { health, latency: { sg: { jkt: 21.5, sg: 0.4 } }, capacity: { jkt: { shed: 0.25, saturation: 0.97, reason: '4/4 GPUs busy' } } });
}

/** A document with `change` applied and its checksum made right again: only the content is wrong. */
function resealed(text: string, change: (doc: SnapshotDocument) => void): string {
  const doc = JSON.parse(text) as SnapshotDocument;
  change(doc);
  const { format, version, state } = doc;
  const sha256 = createHash('sha256').update(JSON.stringify({ format, version, state })).digest('hex');
  return JSON.stringify({ format, version, state, sha256 });
}

describe('snapshot documents', () => {
  it('rebuild exactly the snapshot control built: marks, live health, latency, capacity', () => {
    for (const snapshot of [liveSnapshot(), buildSnapshot(bigConfig(), 7)]) {
      const text = encodeSnapshot(snapshot);
      const { snapshot: again, sha256 } = decodeSnapshot(text);
      expect(again).toEqual(snapshot);
      expect((JSON.parse(encodeSnapshot(again)) as SnapshotDocument).state).toEqual((JSON.parse(text) as SnapshotDocument).state);
      expect(sha256).toBe((JSON.parse(text) as SnapshotDocument).sha256);
    }
  });

  it('carry no health checks or balancer sections', () => {
    const text = encodeSnapshot(liveSnapshot());
    expect(text).not.toMatch(/"check"|"balancer"|"url"/);
  });

  const cases: [string, (text: string) => string, RegExp][] = [
    ['truncated', (t) => t.slice(0, t.length / 2), /not JSON/],
    ['not an object', () => '[1,2]', /\(document\)/],
    ['a flipped byte', (t) => t.replace('"sg"', '"sh"'), /sha256: does not match/],
    ['another format', (t) => resealed(t, (d) => (d.format = 2)), /format: must be 1/],
    ['a bad address', (t) => resealed(t, (d) => (d.state.regions[0].zones[0].endpoints[0].address = '999.1.1.1')), /regions\[0\]: zones\[0\]\.endpoints\[0\]\.address/],
    ['a zone without services', (t) => resealed(t, (d) => (d.state.zone.services = [])), /zone: services/],
    ['a default region that is not there', (t) => resealed(t, (d) => (d.state.zone.defaultRegion = 'hcm')), /defaultRegion: no region "hcm"/],
    ['health missing for an endpoint', (t) => resealed(t, (d) => delete d.state.health[Object.keys(d.state.health)[0]]), /health: no entry for endpoint/],
    ['health for an unknown endpoint', (t) => resealed(t, (d) => (d.state.health['xx/xx-a/192.0.2.1'] = { state: 'up', reason: 'x', transition: false })), /"xx\/xx-a\/192\.0\.2\.1" is not a configured endpoint/],
    ['a health state that is neither up nor down', (t) => resealed(t, (d) => ((Object.values(d.state.health)[0] as { state: string }).state = 'maybe')), /health\..*\.state/],
    ['a shed share above 1', (t) => resealed(t, (d) => ((d.state.capacity as Record<string, { shed: number }>).jkt.shed = 3)), /capacity\.jkt\.shed/],
    ['a negative RTT', (t) => resealed(t, (d) => ((d.state.latency as Record<string, Record<string, number>>).sg.jkt = -1)), /latency\.sg\.jkt/],
    ['an unknown field', (t) => resealed(t, (d) => ((d.state as Record<string, unknown>).extra = 1)), /unrecognized key|extra/i],
  ];
  it.each(cases)('are refused when %s, naming the field', (_, corrupt, message) => {
    expect(() => decodeSnapshot(corrupt(encodeSnapshot(liveSnapshot())))).toThrow(message);
  });
});
