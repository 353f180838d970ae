// The status page's script: reads /v1/status and /v1/events, follows
// /v1/events/stream, and redraws in place. Plain browser JavaScript, no build.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const body = document.body;
  const KINDS = JSON.parse(body.dataset.kinds);
  const FRAME = JSON.parse(body.dataset.frame);
  const IMPORTANT = /^(failover|failback|region\.|zone\.|drain|undrain|force-up|fleet\.|capacity\.|config\.|dns\.)/;
  let status = null;
  let events = [];
  let truncated = false;
  let source = null;
  let refreshTimer = 0;

  function h(tag, attrs, ...kids) {
    const el = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
    for (const k of kids.flat(9)) if (k !== undefined && k !== null && k !== false) el.append(k instanceof Node ? k : String(k));
    return el;
  }
  const state = (s) => h('span', { class: `state ${s}` }, s);
  const pct = (x) => `${Math.round(x * 100)} %`;
  const ms = (x) => (x < 10 ? x.toFixed(1) : Math.round(x)) + ' ms';
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  const day = (t) => new Date(t).toLocaleDateString([], { month: 'short', day: 'numeric' });

  async function get(url) {
    const res = await fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    if (res.status === 401 || res.status === 403) {
      const err = await res.json().catch(() => ({}));
      signedOut(err.error || `HTTP ${res.status}`);
      throw new Error('signed out');
    }
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  function signedOut(why) {
    $('signin').hidden = false;
    $('content').hidden = true;
    // A refused ?token= left its reason in the page: keep it.
    if (!$('signin-why').textContent) $('signin-why').textContent = `The status data needs a viewer token (${why}).`;
    $('summary').textContent = 'Not signed in';
    $('conn').textContent = '';
    if (source) source.close();
    source = null;
  }

  async function refresh() {
    try {
      status = await get('/v1/status');
    } catch (err) {
      if (err.message !== 'signed out') $('conn').textContent = 'control unreachable: retrying';
      return;
    }
    $('signin').hidden = true;
    $('content').hidden = false;
    render();
    if (!source) connect();
  }
  const soon = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 150);
  };

  function render() {
    const s = status;
    const counts = { up: 0, degraded: 0, down: 0 };
    for (const r of s.regions) counts[r.state]++;
    const bad = s.regions.filter((r) => r.state !== 'up').map((r) => `${r.name} (${r.id}) ${r.state}`);
    $('summary').textContent = `${counts.up} of ${s.regions.length} regions up` + (bad.length ? ` — ${bad.join(', ')}` : '');
    $('blind').hidden = !s.blind;
    $('version').textContent = `snapshot version ${s.version}, ${clock(s.at)}`;
    renderMarkers(s.regions);
    $('regions').replaceChildren(...s.regions.map(card));
    $('steering').replaceChildren(...s.steering.map(steeringTable));
    renderRtt(s.rtt, s.regions);
  }

  function renderMarkers(regions) {
    const w = (FRAME.east - FRAME.west) * FRAME.unitsPerDegree;
    $('markers').replaceChildren(
      ...regions.map((r) => {
        const x = (r.lon - FRAME.west) * FRAME.unitsPerDegree;
        const y = (FRAME.north - r.lat) * FRAME.unitsPerDegree;
        const left = x > w * 0.6;
        const tx = left ? x - 12 : x + 12;
        const anchor = left ? 'end' : 'start';
        return h(
          'svg:g',
          { class: `marker ${r.state}`, 'data-region': r.id, 'data-state': r.state, role: 'img', 'aria-label': `${r.name} (${r.id}): ${r.state}` },
          h('svg:circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 8 }),
          h('svg:text', { x: tx.toFixed(1), y: (y - 2).toFixed(1), 'text-anchor': anchor, 'aria-hidden': 'true' }, `${r.name} (${r.id})`),
          h('svg:text', { x: tx.toFixed(1), y: (y + 12).toFixed(1), 'text-anchor': anchor, class: 'word', 'aria-hidden': 'true' }, r.state),
        );
      }),
    );
  }

  function card(r) {
    const c = r.capacity;
    const drains = r.overrides.map((o) => h('li', {}, `${o.mode} ${o.subject}: ${o.reason}`));
    const probes = r.probes.agents === 0 ? 'no agent heard from' : r.probes.unanimous ? `all ${r.probes.agents} agents agree` : `split: ${r.probes.split.map((x) => `${x.endpoint.split('/').slice(1).join('/')} ${x.ok} of ${x.total} see it up`).join('; ')}`;
    return h(
      'article',
      { class: `card ${r.state}`, id: `region-${r.id}`, 'aria-labelledby': `h-region-${r.id}` },
      h('h3', { id: `h-region-${r.id}` }, `${r.name} (${r.id}) `, state(r.state)),
      h('p', { class: 'muted' }, r.reason),
      h(
        'ul',
        { 'aria-label': `zones of ${r.id}` },
        r.zones.map((z) =>
          h(
            'li',
            {},
            h('strong', {}, z.id),
            ` ${z.state}, ${z.up}/${z.total} endpoints up: `,
            z.endpoints.map((e, i) => [i ? ', ' : '', h('span', { class: `addr${e.state === 'down' ? ' ep-down' : ''}`, title: e.reason }, e.address), e.state === 'down' ? ' (down)' : '', e.transition ? ` (${e.transition})` : '']),
          ),
        ),
      ),
      drains.length ? h('ul', { 'aria-label': 'overrides' }, drains) : null,
      h(
        'dl',
        {},
        h('dt', {}, 'Probes'),
        h('dd', {}, probes),
        h('dt', {}, 'GPUs'),
        h('dd', {}, c ? `${c.ready}/${c.instances} ready, ${c.outstanding} in flight, ${c.freeConcurrency} free` : 'no balancer report'),
        h('dt', {}, 'Queue'),
        h('dd', {}, c ? String(c.queueDepth) : '—'),
        h('dt', {}, 'Saturation'),
        h('dd', {}, c ? `${c.saturation === null ? 'unknown' : pct(c.saturation)}${c.shed > 0 ? `, shedding ${pct(c.shed)} of new clients` : ''}` : '—'),
      ),
    );
  }

  function steeringTable(svc) {
    const name = (id) => (status.regions.find((r) => r.id === id) || { name: id }).name;
    const rows = svc.countries.map((c) =>
      h(
        'tr',
        { 'data-country': c.code, 'data-region': c.region || '' },
        h('th', { scope: 'row' }, `${c.name} (${c.code})`),
        h('td', { class: /→/.test(c.reason) ? 'moved' : '' }, c.region ? `${name(c.region)} (${c.region})` : 'no answer'),
        h('td', {}, c.reason, c.shed ? `; sheds ${pct(c.shed.share)} of new clients${c.shed.to ? ` to ${c.shed.to}` : ' (nowhere has headroom)'}` : ''),
      ),
    );
    const rest = Object.entries(svc.elsewhere)
      .sort((a, b) => b[1] - a[1])
      .map(([r, n]) => `${n} → ${r}`)
      .join(', ');
    return h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { id: `steering-${svc.service}` },
        h('caption', {}, `Service ${svc.service} (${svc.policy} policy): where each country's clients are answered from now`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Country'), h('th', { scope: 'col' }, 'Region now'), h('th', { scope: 'col' }, 'Why'))),
        h('tbody', {}, rows),
      ),
      rest ? h('p', { class: 'muted' }, `Other countries: ${rest}.`) : null,
    );
  }

  function renderRtt(rtt, regions) {
    if (rtt.from.length === 0) {
      $('rtt').replaceChildren(h('p', { class: 'muted' }, 'No measurements yet.'));
      return;
    }
    $('rtt').replaceChildren(
      h(
        'table',
        {},
        h('caption', {}, 'Mean round-trip time from each probe region (rows) to each region’s endpoints (columns)'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'from \\ to'), rtt.to.map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
        h(
          'tbody',
          {},
          rtt.from.map((f) => h('tr', {}, h('th', { scope: 'row' }, f), rtt.to.map((t) => h('td', { class: 'num' }, rtt.ms[f] && rtt.ms[f][t] !== undefined ? ms(rtt.ms[f][t]) : '—')))),
        ),
      ),
    );
  }

  // Timeline ------------------------------------------------------------------
  const windowMs = () => Number($('window').value);
  const shown = (e) => $('all').checked || IMPORTANT.test(e.kind);

  async function loadTimeline() {
    try {
      const page = await get(`/v1/events?since=${Date.now() - windowMs()}&limit=1000`);
      events = page.events;
      truncated = page.next !== null;
      renderTimeline();
    } catch {}
  }

  function renderTimeline() {
    const end = Date.now();
    const start = end - windowMs();
    const list = events.filter((e) => e.time >= start && shown(e));
    $('events-note').textContent = `${list.length} event${list.length === 1 ? '' : 's'} in the window${truncated ? ' (the latest 1000 only)' : ''}; newest first.`;
    $('events').replaceChildren(...list.map(eventItem));
    // The strip: one tick per event, blind periods shaded.
    const x = (t) => (((t - start) / (end - start)) * 1000).toFixed(1);
    const marks = [];
    let blindFrom = null;
    for (const e of [...events].reverse()) {
      if (e.kind === 'fleet.blind') blindFrom = e.time;
      if (e.kind === 'fleet.sighted' && blindFrom !== null) {
        marks.push(h('svg:rect', { x: x(Math.max(blindFrom, start)), y: 0, width: Math.max(2, x(e.time) - x(Math.max(blindFrom, start))), height: 36, fill: '#8c959f', 'fill-opacity': 0.4 }));
        blindFrom = null;
      }
    }
    if (blindFrom !== null) marks.push(h('svg:rect', { x: x(Math.max(blindFrom, start)), y: 0, width: Math.max(2, 1000 - x(Math.max(blindFrom, start))), height: 36, fill: '#8c959f', 'fill-opacity': 0.4 }));
    const colour = { failover: '#cf222e', failback: '#1a7f37', drain: '#9a6700', undrain: '#0969da' };
    for (const e of list) {
      const c = colour[e.kind] || (/down$/.test(e.kind) ? '#cf222e' : /up$/.test(e.kind) ? '#1a7f37' : '#57606a');
      marks.push(h('svg:rect', { x: x(e.time), y: /^fail/.test(e.kind) ? 2 : 12, width: 3, height: /^fail/.test(e.kind) ? 32 : 12, fill: c }));
    }
    $('strip').replaceChildren(...marks);
  }

  function eventItem(e) {
    const reason = e.reason.length > 240 ? h('details', {}, h('summary', {}, e.reason.slice(0, 200) + '…'), e.reason) : e.reason;
    const n = e.data && Array.isArray(e.data.countries) ? e.data.countries.length : 0;
    const countries = n ? ` (${n} ${n === 1 ? 'country' : 'countries'})` : '';
    const recent = Date.now() - e.time > 86400000 ? `${day(e.time)} ` : '';
    return h(
      'li',
      { class: `k-${e.kind.replace(/\./g, '-')}`, 'data-kind': e.kind, 'data-id': e.id },
      h('time', { datetime: new Date(e.time).toISOString() }, recent + clock(e.time)),
      h('span', { class: 'kind' }, e.kind),
      h('span', { class: 'what' }, `${e.subject}: ${e.oldState} → ${e.newState}${countries}`),
      h('span', { class: 'reason' }, reason),
    );
  }

  // Live ----------------------------------------------------------------------
  function connect() {
    source = new EventSource('/v1/events/stream');
    $('conn').textContent = 'connecting…';
    source.addEventListener('ready', () => {
      $('conn').textContent = 'live';
      // Whatever happened while (re)connecting is in the history.
      loadTimeline();
      soon();
    });
    const onEvent = (m) => {
      const e = JSON.parse(m.data);
      if (!events.some((x) => x.id === e.id)) events.unshift(e);
      renderTimeline();
      if (/^(failover|failback|region\.|zone\.)/.test(e.kind)) $('announce').textContent = `${e.kind}: ${e.subject} ${e.oldState} → ${e.newState}`;
      if (!/^agent\.joined$/.test(e.kind)) soon();
    };
    for (const k of KINDS) source.addEventListener(k, onEvent);
    source.onerror = () => {
      $('conn').textContent = 'reconnecting…';
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(refresh, 3000);
      }
    };
  }

  $('window').addEventListener('change', loadTimeline);
  $('all').addEventListener('change', renderTimeline);
  // Capacity, queues and RTT change without events: a slow poll keeps them fresh.
  setInterval(() => document.hidden || (status && refresh()), 5000);
  setInterval(() => document.hidden || renderTimeline(), 30000);
  refresh().then(loadTimeline);
})();
