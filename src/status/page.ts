import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { FRAME, land, VIEWBOX } from './map.js';

/** Every event kind control, overrides, configuration and DNS nodes record: the names the page listens for on the stream. */
export const EVENT_KINDS = [
  'endpoint.down', 'endpoint.up', 'zone.down', 'zone.up', 'region.down', 'region.up', 'region.degraded',
  'failover', 'failback', 'drain', 'undrain', 'force-up', 'force-up.cleared',
  'agent.joined', 'agent.silent', 'agent.returned', 'fleet.blind', 'fleet.sighted',
  'capacity.shedding', 'capacity.recovered', 'capacity.unknown', 'config.applied', 'config.deleted', 'dns.reconnected',
] as const;

const WINDOWS = [
  [15 * 60_000, 'last 15 minutes'],
  [3_600_000, 'last hour'],
  [6 * 3_600_000, 'last 6 hours'],
  [24 * 3_600_000, 'last 24 hours'],
  [7 * 24 * 3_600_000, 'last 7 days'],
] as const;

const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');
const hash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
const attr = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export type Page = { html: string; csp: string; gzip: Buffer };

let cached: Page | undefined;

/**
 * The status page: static HTML (no data: the script reads it with the
 * viewer's cookie), its style and script inline, the land outline inline. The
 * Content-Security-Policy allows exactly that inline style and script, and
 * requests to this origin only.
 */
export function statusPage(): Page {
  if (cached) return cached;
  const css = asset('style.css');
  const js = asset('client.js');
  const options = WINDOWS.map(([ms, label]) => `<option value="${ms}"${ms === 3_600_000 ? ' selected' : ''}>${label}</option>`).join('');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Arus status</title><link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='%231a7f37'/%3E%3C/svg%3E"><style>${css}</style></head>
<body data-kinds="${attr(JSON.stringify(EVENT_KINDS))}" data-frame="${attr(JSON.stringify(FRAME))}">
<header><h1>Arus status</h1><p id="summary" role="status">Loading…</p><p id="conn" class="muted"></p></header>
<main>
<section id="signin" aria-labelledby="h-signin" hidden><h2 id="h-signin">Sign in</h2><p id="signin-why"></p>
<form method="get" action="/"><label for="token">Viewer token</label> <input id="token" name="token" type="password" autocomplete="off" required> <button type="submit">Open the status page</button></form>
<p class="muted">Make one with <code>arus token create --role viewer</code>. It is kept in an HttpOnly cookie that only reads status; sign out below.</p></section>
<div id="content">
<p id="blind" class="banner" role="alert" hidden><strong>Blind:</strong> no probe agent has reported for a while; the last known health is held, not measured.</p>
<p id="announce" class="visually-hidden" aria-live="assertive"></p>
<section aria-labelledby="h-regions"><h2 id="h-regions">Regions</h2>
<div class="layout"><figure><svg id="map" viewBox="0 0 ${VIEWBOX.width} ${VIEWBOX.height}" role="group" aria-labelledby="map-title"><title id="map-title">Map of Southeast Asia with each region's state</title><path class="land" aria-hidden="true" d="${land()}"/><g id="markers"></g></svg>
<figcaption>Markers at each region's configured location; land outline from world-countries (ODbL).</figcaption></figure>
<div id="regions"></div></div></section>
<section aria-labelledby="h-steering"><h2 id="h-steering">Where clients are sent</h2><div id="steering"></div></section>
<section aria-labelledby="h-timeline"><h2 id="h-timeline">Timeline</h2>
<div class="controls"><label for="window">Window</label><select id="window">${options}</select><label><input type="checkbox" id="all"> every event (endpoints, agents)</label></div>
<svg id="strip" viewBox="0 0 1000 36" preserveAspectRatio="none" aria-hidden="true"></svg>
<p id="events-note" class="muted"></p><ol id="events" aria-labelledby="h-timeline"></ol></section>
<section aria-labelledby="h-rtt"><h2 id="h-rtt">Round-trip time between probe regions</h2><div id="rtt" class="scroll"></div></section>
</div></main>
<footer><p><span id="version"></span> · <a href="/?signout=1">Sign out</a> · <a href="/docs">API</a></p></footer>
<script>${js}</script></body></html>`;
  const csp = [
    "default-src 'none'",
    `script-src ${hash(js)}`,
    `style-src ${hash(css)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  cached = { html, csp, gzip: gzipSync(html, { level: 9 }) };
  return cached;
}
