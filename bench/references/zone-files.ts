// The files the references read: bench/references/'s templates filled in, and
// the zone file each serves, with `api` and the pinned names in its own way.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Region, Zone } from './shared-config.js';
import { TEMPLATES, TTL, ZONE } from './settings.js';

/** Fills `{{name}}` placeholders of a template in bench/references/. */
export function template(file: string, values: Record<string, string | number>): string {
  return readFileSync(join(TEMPLATES, file), 'utf8').replace(/\{\{(\w+)\}\}/g, (_m, k: string) => {
    if (!(k in values)) throw new Error(`${file}: no value for {{${k}}}`);
    return String(values[k]);
  });
}

/** The zone file each reference serves: the same SOA, NS and glue as regions/zone.yaml; `api` and the pinned names in each server's own way. */
export function zoneFile(zone: Zone, regions: Region[], kind: 'gdnsd' | 'pdns' | 'knot', urls?: Map<string, string>): string {
  const soa = zone.soa;
  const lines = [
    `$ORIGIN ${ZONE}.`,
    `$TTL ${TTL}`,
    `@ ${soa.ttl} IN SOA ${zone.nameservers[0].name}. ${String(soa.rname).replace('@', '.')}. 1 ${soa.refresh} ${soa.retry} ${soa.expire} ${soa.minimum}`,
    ...zone.nameservers.map((ns) => `@ ${zone.nsTtl} IN NS ${ns.name}.`),
    ...zone.nameservers.flatMap((ns) => ns.addresses.map((a) => `${ns.name}. ${zone.nsTtl} IN ${a.includes(':') ? 'AAAA' : 'A'} ${a}`)),
  ];
  const def = regions.find((r) => r.id === zone.defaultRegion)!;
  if (kind === 'gdnsd') {
    lines.push(`api ${TTL} DYNA geoip!api`);
    for (const r of regions) lines.push(`${r.id}.api ${TTL} DYNA geoip!api/${r.id}`);
  } else if (kind === 'knot') {
    // Clients the module does not place get the zone's own records: the default region.
    for (const e of def.endpoints) lines.push(`api ${TTL} IN A ${e.address}`);
    for (const r of regions) for (const e of r.endpoints) lines.push(`${r.id}.api ${TTL} IN A ${e.address}`);
  } else {
    const group = (r: Region) => `{${r.endpoints.map((e) => `['${e.address}']='${urls!.get(e.address)}'`).join(', ')}}`;
    const groups = `{${regions.map((r) => `${r.id}=${group(r)}`).join(', ')}}`;
    const reps = `{${regions.map((r) => `['${r.endpoints[0].address}']='${r.id}'`).join(', ')}}`;
    const fallback = `{${[def, ...regions.filter((r) => r !== def)].map((r) => `'${r.id}'`).join(', ')}}`;
    const opts = "{selector='all', stringmatch='llama-3-8b'}";
    // Regions nearest first, as Arus ranks them: pickclosest, again and again over what is left.
    const script =
      `;local groups = ${groups} local reps = ${reps} local order = {} ` +
      `if countryCode() == '--' then for _, id in ipairs(${fallback}) do table.insert(order, groups[id]) end ` +
      `else local left = {} for a, _ in pairs(reps) do table.insert(left, a) end ` +
      `while #left > 0 do local c = pickclosest(left) table.insert(order, groups[reps[c]]) ` +
      `for i, a in ipairs(left) do if a == c then table.remove(left, i) break end end end end ` +
      `return ifurlextup(order, ${opts})`;
    lines.push(`api ${TTL} IN LUA A "${script}"`);
    for (const r of regions) lines.push(`${r.id}.api ${TTL} IN LUA A "ifurlextup({${group(r)}}, ${opts})"`);
  }
  return lines.join('\n') + '\n';
}
