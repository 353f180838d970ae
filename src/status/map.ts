import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** The map's frame in degrees, and its scale: SVG units per degree (equirectangular; near the equator that is close enough). */
export const FRAME = { west: 92, east: 128, north: 23, south: -11, unitsPerDegree: 10 } as const;

export type Point = readonly [x: number, y: number];

/** Land drawn for context: Southeast Asia and the neighbours inside the frame (ISO 3166-1 alpha-3). */
const LAND = ['IDN', 'MYS', 'SGP', 'BRN', 'THA', 'VNM', 'KHM', 'LAO', 'MMR', 'PHL', 'TLS', 'PNG', 'CHN', 'TWN', 'IND', 'BGD', 'AUS'];

/** Where a latitude/longitude falls on the map, in SVG units (unrounded). */
export function project(lat: number, lon: number): Point {
  return [(lon - FRAME.west) * FRAME.unitsPerDegree, (FRAME.north - lat) * FRAME.unitsPerDegree];
}

export const VIEWBOX = { width: (FRAME.east - FRAME.west) * FRAME.unitsPerDegree, height: (FRAME.north - FRAME.south) * FRAME.unitsPerDegree };

/** Sutherland–Hodgman: the part of a closed ring inside the axis-aligned box [0,w]×[0,h]. */
export function clipRing(ring: readonly Point[], w: number, h: number): Point[] {
  const edges: { inside: (p: Point) => boolean; cut: (a: Point, b: Point) => Point }[] = [
    { inside: (p) => p[0] >= 0, cut: (a, b) => at(a, b, (0 - a[0]) / (b[0] - a[0])) },
    { inside: (p) => p[0] <= w, cut: (a, b) => at(a, b, (w - a[0]) / (b[0] - a[0])) },
    { inside: (p) => p[1] >= 0, cut: (a, b) => at(a, b, (0 - a[1]) / (b[1] - a[1])) },
    { inside: (p) => p[1] <= h, cut: (a, b) => at(a, b, (h - a[1]) / (b[1] - a[1])) },
  ];
  let out: Point[] = [...ring];
  for (const e of edges) {
    const input = out;
    out = [];
    for (let i = 0; i < input.length; i++) {
      const cur = input[i];
      const prev = input[(i + input.length - 1) % input.length];
      if (e.inside(cur)) {
        if (!e.inside(prev)) out.push(e.cut(prev, cur));
        out.push(cur);
      } else if (e.inside(prev)) out.push(e.cut(prev, cur));
    }
    if (out.length === 0) break;
  }
  return out;
}

const at = (a: Point, b: Point, t: number): Point => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];

/** Douglas–Peucker: drops points closer than `epsilon` to the line their neighbours keep. */
export function simplify(points: readonly Point[], epsilon: number): Point[] {
  if (points.length < 3) return [...points];
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack: [number, number][] = [[0, points.length - 1]];
  while (stack.length) {
    const [i, j] = stack.pop()!;
    let worst = -1;
    let max = epsilon;
    for (let k = i + 1; k < j; k++) {
      const d = distanceToSegment(points[k], points[i], points[j]);
      if (d > max) [max, worst] = [d, k];
    }
    if (worst > 0) {
      keep[worst] = 1;
      stack.push([i, worst], [worst, j]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

function distanceToSegment(p: Point, a: Point, b: Point): number {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/** Shoelace area (absolute). */
export function area(ring: readonly Point[]): number {
  let s = 0;
  for (let i = 0; i < ring.length; i++) {
    const [a, b] = [ring[i], ring[(i + 1) % ring.length]];
    s += a[0] * b[1] - b[0] * a[1];
  }
  return Math.abs(s) / 2;
}

/** One closed ring as compact SVG path data: absolute start, then relative integer steps. */
export function ringPath(ring: readonly Point[]): string {
  const pts = ring.map(([x, y]) => [Math.round(x), Math.round(y)] as const).filter((p, i, a) => i === 0 || p[0] !== a[i - 1][0] || p[1] !== a[i - 1][1]);
  if (pts.length < 3) return '';
  let d = `M${pts[0][0]} ${pts[0][1]}l`;
  for (let i = 1; i < pts.length; i++) {
    const dx = pts[i][0] - pts[i - 1][0];
    const dy = pts[i][1] - pts[i - 1][1];
    d += `${i > 1 && dx >= 0 ? ' ' : ''}${dx}${dy >= 0 ? ' ' : ''}${dy}`;
  }
  return `${d}z`;
}

type Geometry = { type: 'Polygon'; coordinates: number[][][] } | { type: 'MultiPolygon'; coordinates: number[][][][] };

/**
 * The land outline as one SVG path: the world-countries package's GeoJSON
 * (ODbL), outer rings only, clipped to the frame, simplified to about a unit,
 * islands smaller than `minArea` square units left out. A few kilobytes.
 */
export function landPath(opts: { epsilon?: number; minArea?: number } = {}): string {
  const epsilon = opts.epsilon ?? 1.1;
  const minArea = opts.minArea ?? 8;
  const require = createRequire(import.meta.url);
  const parts: string[] = [];
  for (const code of LAND) {
    const file = require.resolve(`world-countries/data/${code.toLowerCase()}.geo.json`);
    const geo = JSON.parse(readFileSync(file, 'utf8')) as { features: { geometry: Geometry }[] };
    for (const f of geo.features) {
      const polygons = f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates;
      for (const polygon of polygons) {
        const ring = clipRing(polygon[0].map(([lon, lat]) => project(lat, lon)), VIEWBOX.width, VIEWBOX.height);
        if (ring.length < 3 || area(ring) < minArea) continue;
        parts.push(ringPath(simplify([...ring, ring[0]], epsilon).slice(0, -1)));
      }
    }
  }
  return parts.join('');
}

let cached: string | undefined;
/** `landPath()` once per process. */
export function land(): string {
  return (cached ??= landPath());
}
