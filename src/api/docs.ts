import { html, raw } from 'hono/html';

type Doc = { info: { title: string; version: string; description?: string }; paths?: Record<string, Record<string, { summary?: string; tags?: string[] }>> };

/** A readable list of the API's routes, rendered from the OpenAPI document (no external scripts: the network may be closed). */
export function docsPage(doc: Doc) {
  const rows = Object.entries(doc.paths ?? {}).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, summary: op.summary ?? '', tag: op.tags?.[0] ?? '' })),
  );
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${doc.info.title}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#111}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
code{font-family:ui-monospace,monospace}.m{font-weight:600}</style></head>
<body><h1>${doc.info.title} <small>${doc.info.version}</small></h1>
<p>${doc.info.description ?? ''} Every <code>/v1</code> route needs <code>Authorization: Bearer &lt;token&gt;</code>. The machine-readable description is at <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
<table><thead><tr><th scope="col">method</th><th scope="col">path</th><th scope="col">what</th><th scope="col">group</th></tr></thead><tbody>
${raw(rows.map((r) => `<tr><td class="m">${r.method}</td><td><code>${escape(r.path)}</code></td><td>${escape(r.summary)}</td><td>${escape(r.tag)}</td></tr>`).join('\n'))}
</tbody></table></body></html>`;
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]!);
}
