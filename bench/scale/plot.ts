// The plot: an SVG built by hand (polylines on two panels), and a PNG of it
// screenshotted in Chromium through playwright-core. Top: p50 (dashed) and
// p99 (solid) per 5-s bucket for each setup, log scale, with the spike and
// the scale-up lag shaded. Bottom: the offered rate and the instances each
// setup holds (Arus's current, desired and ready from its /metrics).
import { existsSync, writeFileSync } from 'node:fs';
import type { Bucket } from './analyze.js';
import type { FleetSample } from './scrape.js';
import type { SetupSpec } from './setups.js';
import { CHROMIUM, DURATION_S, PEAK_RATE, rateAt, SPIKE_END_MS, SPIKE_START_MS } from './settings.js';

const W = 1100;
const LEFT = 70;
const RIGHT = 70;
const TOP = { y: 50, h: 360 };
const BOTTOM = { y: 480, h: 200 };
const H = 760;
const COLORS: Record<string, string> = { peak: '#1f77b4', average: '#d62728', arus: '#2ca02c' };

const x = (ms: number) => LEFT + (ms / (DURATION_S * 1000)) * (W - LEFT - RIGHT);
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** A path through the points, broken where a value is missing. */
function path(points: [number, number | undefined][], step = false): string {
  let d = '';
  let open = false;
  for (const [px, py] of points) {
    if (py === undefined || !Number.isFinite(py)) {
      open = false;
      continue;
    }
    if (!open) d += `M${px.toFixed(1)},${py.toFixed(1)}`;
    else if (step) d += `H${px.toFixed(1)}V${py.toFixed(1)}`;
    else d += `L${px.toFixed(1)},${py.toFixed(1)}`;
    open = true;
  }
  return d;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const m of [1, 2, 5]) if (m * 10 ** e >= lo && m * 10 ** e <= hi) out.push(m * 10 ** e);
  return out;
}

export function svg(opts: { buckets: Bucket[]; specs: SetupSpec[]; fleet: FleetSample[]; lag?: number; title: string }): string {
  const { buckets, specs, fleet, lag, title } = opts;
  const lat = buckets.flatMap((b) => specs.flatMap((s) => [b.per[s.key].p50, b.per[s.key].p99])).filter((v) => Number.isFinite(v) && v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...lat, 1000)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...lat, 1000) * 1.05));
  const yLat = (ms: number) => TOP.y + TOP.h - ((Math.log10(ms) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * TOP.h;
  const maxInst = Math.max(...specs.map((s) => s.instances), ...fleet.map((f) => Math.max(f.current ?? 0, f.desired ?? 0))) + 1;
  const maxRate = PEAK_RATE * 1.25;
  const yRate = (r: number) => BOTTOM.y + BOTTOM.h - (r / maxRate) * BOTTOM.h;
  const yInst = (n: number) => BOTTOM.y + BOTTOM.h - (n / maxInst) * BOTTOM.h;
  const parts: string[] = [];
  const el = (s: string) => parts.push(s);
  el(`<rect width="${W}" height="${H}" fill="white"/>`);
  el(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  // The spike and the lag, on both panels.
  for (const p of [TOP, BOTTOM]) {
    el(`<rect x="${x(SPIKE_START_MS)}" y="${p.y}" width="${x(SPIKE_END_MS) - x(SPIKE_START_MS)}" height="${p.h}" fill="#fff3e0"/>`);
    const lagTo = lag ?? DURATION_S * 1000;
    el(`<rect x="${x(SPIKE_START_MS)}" y="${p.y}" width="${x(lagTo) - x(SPIKE_START_MS)}" height="${p.h}" fill="#e0e0e0" opacity="0.7"/>`);
  }
  el(`<text x="${x(SPIKE_START_MS) + 4}" y="${TOP.y + 14}" font-size="11" fill="#555">spike ${lag !== undefined ? `(grey: scale-up lag, ${((lag - SPIKE_START_MS) / 1000).toFixed(1)} s)` : '(grey: the lag never ended)'}</text>`);
  // Axes and grid.
  for (const t of logTicks(lo, hi)) {
    el(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${yLat(t)}" y2="${yLat(t)}" stroke="#ddd"/>`);
    el(`<text x="${LEFT - 6}" y="${yLat(t) + 4}" font-size="11" text-anchor="end">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`);
  }
  for (let s = 0; s <= DURATION_S; s += DURATION_S > 120 ? 30 : 10)
    for (const p of [TOP, BOTTOM]) {
      el(`<line x1="${x(s * 1000)}" x2="${x(s * 1000)}" y1="${p.y}" y2="${p.y + p.h}" stroke="#eee"/>`);
      el(`<text x="${x(s * 1000)}" y="${p.y + p.h + 14}" font-size="11" text-anchor="middle">${s} s</text>`);
    }
  for (const p of [TOP, BOTTOM]) el(`<rect x="${LEFT}" y="${p.y}" width="${W - LEFT - RIGHT}" height="${p.h}" fill="none" stroke="#333"/>`);
  el(`<text x="16" y="${TOP.y + TOP.h / 2}" font-size="12" transform="rotate(-90 16 ${TOP.y + TOP.h / 2})" text-anchor="middle">latency per 5-s bucket (log)</text>`);
  // Latency lines.
  for (const s of specs) {
    const c = COLORS[s.key];
    for (const [q, dash] of [['p99', ''], ['p50', ' stroke-dasharray="5,4"']] as const)
      el(`<path d="${path(buckets.map((b) => [x((b.from + b.to) / 2), b.per[s.key][q] > 0 ? yLat(b.per[s.key][q]) : undefined]))}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`);
  }
  // Bottom: offered rate (left axis), instances (right axis).
  for (let r = 0; r <= maxRate; r += 10) el(`<text x="${LEFT - 6}" y="${yRate(r) + 4}" font-size="11" text-anchor="end">${r}</text>`);
  for (let n = 0; n <= maxInst; n++) el(`<text x="${W - RIGHT + 6}" y="${yInst(n) + 4}" font-size="11">${n}</text>`);
  el(`<text x="16" y="${BOTTOM.y + BOTTOM.h / 2}" font-size="12" transform="rotate(-90 16 ${BOTTOM.y + BOTTOM.h / 2})" text-anchor="middle">offered req/s</text>`);
  el(`<text x="${W - 16}" y="${BOTTOM.y + BOTTOM.h / 2}" font-size="12" transform="rotate(90 ${W - 16} ${BOTTOM.y + BOTTOM.h / 2})" text-anchor="middle">instances</text>`);
  const edges = [0, SPIKE_START_MS, SPIKE_END_MS, DURATION_S * 1000];
  el(`<path d="${path(edges.map((t) => [x(t), yRate(rateAt(Math.min(t, DURATION_S * 1000 - 1)))]), true)}" fill="none" stroke="#888" stroke-width="2"/>`);
  for (const s of specs.filter((s) => !s.autoscale)) el(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${yInst(s.instances)}" y2="${yInst(s.instances)}" stroke="${COLORS[s.key]}" stroke-width="2" stroke-dasharray="8,4"/>`);
  const pts = fleet.filter((f) => f.t >= 0 && f.t <= DURATION_S * 1000);
  el(`<path d="${path(pts.map((f) => [x(f.t), f.desired === undefined ? undefined : yInst(f.desired)]), true)}" fill="none" stroke="#9467bd" stroke-width="1.5" stroke-dasharray="2,3"/>`);
  el(`<path d="${path(pts.map((f) => [x(f.t), Number.isFinite(f.ready) ? yInst(f.ready) : undefined]), true)}" fill="none" stroke="#98df8a" stroke-width="1.5"/>`);
  el(`<path d="${path(pts.map((f) => [x(f.t), f.current === undefined ? undefined : yInst(f.current)]), true)}" fill="none" stroke="${COLORS.arus}" stroke-width="2.5"/>`);
  // Legend.
  const legend: [string, string, string][] = [
    ...specs.flatMap((s): [string, string, string][] => [
      [`${s.label} p99`, COLORS[s.key], ''],
      [`p50`, COLORS[s.key], '5,4'],
    ]),
  ];
  legend.forEach(([label, c, dash], i) => {
    const lx = LEFT + 10 + (i % 2) * 190 + Math.floor(i / 2) * 260;
    const ly = TOP.y + TOP.h + 36;
    el(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/><text x="${lx + 30}" y="${ly + 4}" font-size="11">${esc(label)}</text>`);
  });
  const bottomLegend: [string, string, string][] = [
    ['offered rate', '#888', ''],
    ['arus current instances', COLORS.arus, ''],
    ['arus ready', '#98df8a', ''],
    ['arus desired', '#9467bd', '2,3'],
    ...specs.filter((s) => !s.autoscale).map((s): [string, string, string] => [`${s.label} instances`, COLORS[s.key], '8,4']),
  ];
  let lx = LEFT + 10;
  bottomLegend.forEach(([label, c, dash]) => {
    const ly = BOTTOM.y + BOTTOM.h + 36;
    el(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/><text x="${lx + 30}" y="${ly + 4}" font-size="11">${esc(label)}</text>`);
    lx += 30 + label.length * 6.2 + 24;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">${parts.join('')}</svg>\n`;
}

/** Writes the SVG, and the PNG when Chromium is there; returns what was written, or how to get the PNG. */
export async function writePlot(svgPath: string, pngPath: string, text: string): Promise<string> {
  writeFileSync(svgPath, text);
  if (!existsSync(CHROMIUM)) return `${svgPath} (no PNG: ${CHROMIUM} is missing; \`sudo bash .ci/deps\` installs it, or open the SVG in a browser)`;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: W, height: H } });
    await page.setContent(`<!doctype html><html><body style="margin:0">${text}</body></html>`);
    await page.screenshot({ path: pngPath, clip: { x: 0, y: 0, width: W, height: H } });
  } finally {
    await browser.close();
  }
  return `${pngPath} and ${svgPath}`;
}
