// References, side by side: the same zone, regions, endpoints, health-check
// targets and client locations served by Arus (`arus up`), gdnsd (geoip
// plugin, extmon health checks), PowerDNS (Lua records: ifurlextup over
// groups ordered by pickclosest) and Knot (geoip module, no health checks),
// loaded with the same dnsperf query file, then timed failing over when both
// Jakarta model servers die. One table, as ratios against Arus.
//
//   npm run bench:references
//
// Needs Debian's dnsperf, gdnsd, pdns-server + pdns-backend-bind +
// pdns-backend-geoip, knot + knot-module-geoip, and curl (gdnsd's check
// command). A server that is missing or does not start is a row that says so.
//
// Environment: BENCH_SECONDS (20), BENCH_RUNS (3, medians), BENCH_FAILOVER_RUNS
// (3, medians), BENCH_SERVER_CPU (1), BENCH_CLIENT_CPU (0), BENCH_OUTSTANDING
// (dnsperf -q, 100), BENCH_ONLY (comma-separated: arus,gdnsd,pdns,knot).
//
// Locations: one MaxMind-format database, written here (City-shaped:
// continent.code, country.iso_code, location), is read by all three
// references. It holds every /24 of the query mix's 17 /16s with the country
// that Arus's own database (ip-location-db) gives it and that country's point
// from world-countries (the point Arus measures distances from), and the
// endpoints' addresses at their regions' coordinates (PowerDNS's pickclosest
// locates answer candidates in the same database). Before the load the bench
// asks every server the same questions and prints any answer that differs
// from Arus's. Arus keeps reading its full database.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Packet } from 'dns2';
import { parse as parseYaml } from 'yaml';
import { ecsOf, query } from '../src/dns/fixtures.js';
import { countryLocation } from '../src/geo/countries.js';
import { defaultDatabasePath, openGeoIp } from '../src/geo/geoip.js';
import { Typed, writeMmdb, type MmdbEntry } from '../src/geo/test-mmdb-writer.js';
import { regionsWithChecks } from '../test/helpers/regions.js';
import { SUBNETS, freePort, median, runDnsperf, sleep, writeQueryFile, type DnsperfResult } from './common.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('BENCH_SECONDS', 20);
const RUNS = env('BENCH_RUNS', 3);
const FAILOVER_RUNS = env('BENCH_FAILOVER_RUNS', 3);
const SERVER_CPU = env('BENCH_SERVER_CPU', 1);
const CLIENT_CPU = env('BENCH_CLIENT_CPU', 0);
const OUTSTANDING = env('BENCH_OUTSTANDING', 100);
const ONLY = process.env.BENCH_ONLY?.split(',');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'arus.js');
const TEMPLATES = join(ROOT, 'bench', 'references');
const ZONE = 'gslb.example.com';
const TTL = 30;


const has = (cmd: string, args: string[] = ['--version']) => !spawnSync(cmd, args).error;


/** Fills `{{name}}` placeholders of a template in bench/references/. */
function template(file: string, values: Record<string, string | number>): string {
  return readFileSync(join(TEMPLATES, file), 'utf8').replace(/\{\{(\w+)\}\}/g, (_m, k: string) => {
    if (!(k in values)) throw new Error(`${file}: no value for {{${k}}}`);
    return String(values[k]);
  });
}

// ---------------------------------------------------------------- the shared configuration

type Region = { id: string; lat: number; lon: number; countries: string[]; endpoints: { zone: string; address: string }[] };

function readRegions(): { regions: Region[]; zone: { nameservers: { name: string; addresses: string[] }[]; soa: Record<string, number | string>; nsTtl: number; defaultRegion: string } } {
  const dir = join(ROOT, 'regions');
  const regions: Region[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && x !== 'zone.yaml').sort()) {
    const doc = parseYaml(readFileSync(join(dir, f), 'utf8'));
    regions.push({
      id: doc.id,
      lat: doc.location.lat,
      lon: doc.location.lon,
      countries: doc.countries,
      endpoints: doc.zones.flatMap((z: { id: string; endpoints: { address: string }[] }) => z.endpoints.map((e) => ({ zone: z.id, address: e.address }))),
    });
  }
  const order = ['sg', 'jkt', 'bkk', 'mnl'];
  regions.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  return { regions, zone: parseYaml(readFileSync(join(dir, 'zone.yaml'), 'utf8')) };
}

const toRad = (d: number) => (d * Math.PI) / 180;
function km(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const h = Math.sin(toRad(b.lat - a.lat) / 2) ** 2 + Math.cos(toRad(a.lat)) * Math.cos(toRad(b.lat)) * Math.sin(toRad(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

/** The MaxMind-format database the references read, and the country of every /24 (from Arus's database). */
function writeGeoDb(path: string, regions: Region[]): Map<string, string> {
  const geo = openGeoIp(defaultDatabasePath());
  const entries: MmdbEntry[] = [];
  const countryOf = new Map<string, string>();
  const record = (cc: string, at: { lat: number; lon: number }) => ({
    continent: { code: 'AS' },
    country: { iso_code: cc },
    // PowerDNS reads no location without an accuracy radius.
    location: { latitude: new Typed('double', at.lat), longitude: new Typed('double', at.lon), accuracy_radius: new Typed('uint16', 100) },
  });
  for (const net of Object.values(SUBNETS).flat()) {
    const [a, b] = net.split('.').map(Number);
    for (let c = 0; c < 256; c++) {
      const cc = geo.lookup(`${a}.${b}.${c}.1`, 4).facts?.country;
      const at = cc ? countryLocation(cc) : undefined;
      if (!cc || !at) continue;
      countryOf.set(`${a}.${b}.${c}`, cc);
      entries.push({ network: `${a}.${b}.${c}.0/24`, data: record(cc, at) });
    }
  }
  for (const r of regions) for (const e of r.endpoints) entries.push({ network: `${e.address}/32`, data: record(r.countries[0], r) });
  writeFileSync(path, writeMmdb({ ipVersion: 4, recordSize: 28, databaseType: 'GeoIP2-City', entries }));
  return countryOf;
}

// ---------------------------------------------------------------- servers

type Server = {
  name: 'arus' | 'gdnsd' | 'pdns' | 'knot';
  label: string;
  port: number;
  proc?: ChildProcess;
  /** The process whose RSS is reported. */
  pid?: number;
  health: boolean;
  notes: string[];
  failed?: string;
  stderr: string;
};

function spawnServer(s: Server, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): void {
  const pin = ['taskset', '-c', String(SERVER_CPU)];
  const proc = spawn(pin[0], [...pin.slice(1), cmd, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(proc);
  s.proc = proc;
  s.pid = proc.pid; // taskset execs the server: the same process
  const keep = (d: Buffer) => (s.stderr = (s.stderr + d).slice(-3000));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  proc.once('exit', (code, signal) => {
    if (!stopping) s.failed ??= `exited (${code ?? signal}): ${s.stderr.trim().split('\n').slice(-2).join(' | ')}`;
  });
}
let stopping = false;
const started = new Set<ChildProcess>();

async function startArus(s: Server, dir: string, simPort: (zone: string) => number, apiPort: number): Promise<void> {
  const regions = regionsWithChecks(dir, simPort);
  spawnServer(s, process.execPath, [BIN, 'up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', `127.0.0.1:${s.port}`, '--api-listen', `127.0.0.1:${apiPort}`, '--sim', 'off'], {
    env: { ARUS_LOG_LEVEL: 'info' },
  });
  // On a busy machine loading the TypeScript sources can take a while: wait for its "ready" line.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('arus up not ready in 180 s')), 180_000);
    createInterface({ input: s.proc!.stdout! }).on('line', (line) => line.includes('"msg":"ready"') && (clearTimeout(timer), resolve()));
    s.proc!.once('exit', () => (clearTimeout(timer), reject(new Error(`arus up exited: ${s.stderr.slice(-500)}`))));
  });
  s.notes.push('arus up: every role in one process (control, API, SQLite, 4 probe agents every 500 ms, fall 2, rise 4)');
}

async function startGdnsd(s: Server, dir: string, regions: Region[], zone: ReturnType<typeof readRegions>['zone'], urls: Map<string, string>, db: string): Promise<void> {
  const conf = join(dir, 'gdnsd');
  mkdirSync(join(conf, 'zones'), { recursive: true });
  mkdirSync(join(conf, 'run'), { recursive: true });
  mkdirSync(join(conf, 'state'), { recursive: true });
  // extmon passes only the address (%%ITEM%%): the script maps it to its check URL.
  const cases = [...urls].map(([a, u]) => `  ${a}) url=${u} ;;`).join('\n');
  writeFileSync(join(conf, 'check.sh'), template('gdnsd-check.sh', { cases }), { mode: 0o755 });
  const dcmap = regions.map((r) => `        ${r.id} => { ${r.endpoints.map((e) => `${e.zone} => ${e.address}`).join(', ')} }`).join('\n');
  const coords = regions.map((r) => `        ${r.id} => [ ${r.lat}, ${r.lon} ]`).join('\n');
  writeFileSync(
    join(conf, 'config'),
    template('gdnsd.config', {
      port: s.port,
      run: join(conf, 'run'),
      state: join(conf, 'state'),
      check: join(conf, 'check.sh'),
      db,
      datacenters: [zone.defaultRegion, ...regions.map((r) => r.id).filter((id) => id !== zone.defaultRegion)].join(', '),
      coords,
      dcmap,
    }),
  );
  writeFileSync(join(conf, 'zones', ZONE), zoneFile(zone, regions, 'gdnsd'));
  spawnServer(s, 'gdnsd', ['-c', conf, 'start']);
  s.notes.push('gdnsd: geoip plugin, city-auto-mode (auto_dc_coords: nearest region by distance), multifo per region; extmon runs sh + curl + grep against each check URL every 3 s with a 2 s timeout (1 s timeouts failed healthy servers on this busy machine), down after 2 failures, up after 4 successes');
}

async function startPdns(s: Server, dir: string, regions: Region[], zone: ReturnType<typeof readRegions>['zone'], urls: Map<string, string>, db: string): Promise<void> {
  const conf = join(dir, 'pdns');
  mkdirSync(conf, { recursive: true });
  writeFileSync(join(conf, 'named.conf'), `zone "${ZONE}" { type master; file "${join(conf, `${ZONE}.zone`)}"; };\n`);
  writeFileSync(join(conf, 'geo-zones.yaml'), 'domains: []\n');
  writeFileSync(join(conf, 'pdns.conf'), template('pdns.conf', { port: s.port, dir: conf, db }));
  writeFileSync(join(conf, `${ZONE}.zone`), zoneFile(zone, regions, 'pdns', urls));
  spawnServer(s, 'pdns_server', [`--config-dir=${conf}`, `--socket-dir=${conf}`]);
  s.notes.push('PowerDNS: bind backend + geoip backend (for the database only); LUA records: regions ordered by repeated pickclosest, then ifurlextup over the groups (selector all, stringmatch llama-3-8b), checks every 1 s (its minimum), no fall/rise: one failed check flips');
}

async function startKnot(s: Server, dir: string, regions: Region[], zone: ReturnType<typeof readRegions>['zone'], db: string): Promise<void> {
  const conf = join(dir, 'knot');
  mkdirSync(conf, { recursive: true });
  // Static: Knot's geoip module maps a country to one record set; the nearest region for each country, computed here.
  const geo: string[] = [];
  for (const name of [`api.${ZONE}`]) {
    geo.push(`${name}:`);
    for (const cc of Object.keys(SUBNETS)) {
      const at = countryLocation(cc)!;
      const best = [...regions].sort((a, b) => km(at, a) - km(at, b))[0];
      geo.push(`  - geo: "${cc}"`, `    A: [ ${best.endpoints.map((e) => e.address).join(', ')} ]`);
    }
  }
  writeFileSync(join(conf, 'geo.conf'), geo.join('\n') + '\n');
  writeFileSync(join(conf, 'knot.conf'), template('knot.conf', { port: s.port, dir: conf, db, geo: join(conf, 'geo.conf'), zonefile: join(conf, `${ZONE}.zone`) }));
  writeFileSync(join(conf, `${ZONE}.zone`), zoneFile(zone, regions, 'knot'));
  spawnServer(s, 'knotd', ['-c', join(conf, 'knot.conf')]);
  s.notes.push('Knot: geoip module (geodb mode, country/iso_code; it reads ECS), each country mapped to its nearest region; no health checks');
}

/** The zone file each reference serves: the same SOA, NS and glue as regions/zone.yaml; `api` and the pinned names in each server's own way. */
function zoneFile(zone: ReturnType<typeof readRegions>['zone'], regions: Region[], kind: 'gdnsd' | 'pdns' | 'knot', urls?: Map<string, string>): string {
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

// ---------------------------------------------------------------- asking

const socket = dgram.createSocket('udp4');
let nextId = 1;
/** The sorted A addresses (or 'timeout' / an rcode name) for `name` from `subnet`. */
function ask(port: number, name: string, subnet?: string, timeoutMs = 1000): Promise<string[]> {
  const id = nextId++ & 0xffff;
  const packet = query({ id, name, type: 1, opt: { size: 1232, options: subnet ? [ecsOf(subnet)] : [] } });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', on);
      resolve(['timeout']);
    }, timeoutMs);
    const on = (msg: Buffer) => {
      if (msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      socket.off('message', on);
      const rcode = msg[3] & 0x0f;
      if (rcode !== 0) return resolve([`rcode ${rcode}`]);
      resolve(
        Packet.parse(msg)
          .answers.filter((a) => a.type === Packet.TYPE.A)
          .map((a) => (a as { address: string }).address)
          .sort(),
      );
    };
    socket.on('message', on);
    socket.send(packet, port, '127.0.0.1');
  });
}

// ---------------------------------------------------------------- dnsperf

type Result = DnsperfResult;
const dnsperf = (port: number, file: string, seconds: number): Promise<Result> => runDnsperf({ port, file, seconds, outstanding: OUTSTANDING, cpu: CLIENT_CPU });

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  for (const [tool, args] of [
    ['dnsperf', ['-h']],
    ['taskset', ['-c', '0', 'true']],
  ] as const)
    if (!has(tool, [...args])) throw new Error(`${tool} not found (Debian: apt-get install ${tool === 'taskset' ? 'util-linux' : tool})`);
  const dir = mkdtempSync(join(tmpdir(), 'arus-references-'));
  const { regions, zone } = readRegions();
  const db = join(dir, 'geo.mmdb');
  const countryOf = writeGeoDb(db, regions);
  const jkt = regions.find((r) => r.id === 'jkt')!;
  const jktAddresses = new Set(jkt.endpoints.map((e) => e.address));

  // The model servers every health check points at: one `arus sim` per zone, on the client's core.
  const sims = new Map<string, { port: number; proc?: ChildProcess }>();
  const startSim = (port: number) =>
    new Promise<ChildProcess>((resolve, reject) => {
      const proc = spawn('taskset', ['-c', String(CLIENT_CPU), process.execPath, BIN, 'sim', '--listen', `127.0.0.1:${port}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      started.add(proc);
      proc.once('exit', (code) => reject(new Error(`sim on ${port} exited (${code})`)));
      createInterface({ input: proc.stdout! }).on('line', (l) => l.includes('"msg":"ready"') && resolve(proc));
    });
  for (const r of regions) for (const e of r.endpoints) sims.set(e.zone, { port: await freePort() });
  for (const s of sims.values()) s.proc = await startSim(s.port);
  const urls = new Map(regions.flatMap((r) => r.endpoints.map((e) => [e.address, `http://127.0.0.1:${sims.get(e.zone)!.port}/v1/models`] as const)));

  const servers: Server[] = [];
  const make = (name: Server['name'], label: string, health: boolean) => ({ name, label, port: 0, health, notes: [], stderr: '' }) as Server;
  const want = (n: string) => !ONLY || ONLY.includes(n) || n === 'arus';
  const arus = make('arus', 'Arus', true);
  servers.push(arus);
  if (want('gdnsd')) servers.push(make('gdnsd', `gdnsd ${version('gdnsd', ['-V'], /gdnsd version ([\d.]+)/)}`, true));
  if (want('pdns')) servers.push(make('pdns', `PowerDNS ${version('pdns_server', ['--version'], /Authoritative Server ([\d.]+)/)}`, true));
  if (want('knot')) servers.push(make('knot', `Knot ${version('knotd', ['-V'], /version ([\d.]+)/)}`, false));

  for (const s of servers) {
    s.port = await freePort();
    try {
      if (s.name === 'arus') await startArus(s, dir, (zone) => sims.get(zone)!.port, await freePort());
      else if (s.name === 'gdnsd') has('gdnsd', ['-V']) ? await startGdnsd(s, dir, regions, zone, urls, db) : (s.failed = 'gdnsd not installed (apt-get install gdnsd)');
      else if (s.name === 'pdns')
        has('pdns_server') ? await startPdns(s, dir, regions, zone, urls, db) : (s.failed = 'pdns_server not installed (apt-get install pdns-server pdns-backend-bind pdns-backend-geoip)');
      else has('knotd', ['-V']) ? await startKnot(s, dir, regions, zone, db) : (s.failed = 'knotd not installed (apt-get install knot knot-module-geoip)');
    } catch (err) {
      s.failed = (err as Error).message;
    }
  }
  const live = () => servers.filter((s) => !s.failed);

  try {
    // Up and answering, and every health check passed at least once (a server that starts "unknown = up" would pass
    // anyway; gdnsd and PowerDNS both start up).
    for (const s of live()) {
      const end = Date.now() + 120_000;
      let a = await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 1000);
      while (!s.failed && !a.some((x) => jktAddresses.has(x)) && Date.now() < end) {
        await sleep(200);
        a = await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 1000);
      }
      if (!s.failed && !a.some((x) => jktAddresses.has(x))) s.failed = `no Jakarta answer for an Indonesian client in 120 s (last: ${a.join(' ')}): ${s.stderr.trim().split('\n').slice(-2).join(' | ')}`;
    }
    await sleep(5000);

    // Same questions, same answers?
    const questions: { name: string; subnet?: string; label: string }[] = [{ name: `api.${ZONE}`, label: 'api, no ECS (resolver 127.0.0.1)' }];
    for (const [cc, nets] of Object.entries(SUBNETS))
      for (const net of nets) {
        const [a, b] = net.split('.');
        for (const c of [0, 77, 200]) if (countryOf.has(`${a}.${b}.${c}`)) questions.push({ name: `api.${ZONE}`, subnet: `${a}.${b}.${c}.0/24`, label: `api from ${a}.${b}.${c}.0/24 (${countryOf.get(`${a}.${b}.${c}`)}, listed under ${cc})` });
      }
    for (const r of regions) questions.push({ name: `${r.id}.api.${ZONE}`, label: `${r.id}.api` });
    const differ: Record<string, string[]> = {};
    // A lost or late packet on a busy machine is not a different answer: asked again, up to five times, 2 s each.
    const askAgain = async (port: number, name: string, subnet?: string) => {
      let a = await ask(port, name, subnet, 2000);
      for (let i = 0; i < 4 && a[0] === 'timeout'; i++) a = await ask(port, name, subnet, 2000);
      return a.join(' ');
    };
    for (const q of questions) {
      const expected = await askAgain(arus.port, q.name, q.subnet);
      for (const s of live().filter((x) => x !== arus)) {
        const got = await askAgain(s.port, q.name, q.subnet);
        if (got !== expected) (differ[s.name] ??= []).push(`${q.label}: ${got} (Arus: ${expected})`);
      }
    }
    console.log(`answers compared: ${questions.length} questions (every /16 of the mix, pinned names, no ECS)`);
    for (const s of live().filter((x) => x !== arus)) {
      const d = differ[s.name] ?? [];
      console.log(`  ${s.label}: ${d.length === 0 ? 'all the same as Arus' : `${d.length} differ`}`);
      for (const line of d.slice(0, 20)) console.log(`    ${line}`);
      if (d.length) s.notes.push(`${d.length} of ${questions.length} answers differ from Arus's`);
    }

    // Load: the servers stay up and the runs alternate, so the noise of a shared machine falls on all alike.
    const file = join(dir, 'queries.bin');
    writeQueryFile(file);
    console.log(`\nload: ${RUNS} run(s) of ${SECONDS} s each, alternating; servers pinned to CPU ${SERVER_CPU}, dnsperf (-q ${OUTSTANDING}) to CPU ${CLIENT_CPU}`);
    const results = new Map<Server, Result[]>();
    for (const s of live()) {
      try {
        if (RUNS > 0) await dnsperf(s.port, file, 2); // warm-up
        results.set(s, []);
      } catch (err) {
        s.failed = `dnsperf: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    for (let run = 1; run <= RUNS; run++)
      for (const s of live()) {
        const r = await dnsperf(s.port, file, SECONDS);
        results.get(s)!.push(r);
        console.log(`run ${run} ${s.name.padEnd(5)}: ${Math.round(r.qps)} q/s, p99 ${r.p99ms.toFixed(2)} ms, lost ${r.lost}; ${r.rcodes}`);
      }
    const rss = new Map(live().map((s) => [s, rssMiB(s.pid!)]));

    // Fail over: both Jakarta model servers die; each server is asked from Indonesia every 100 ms until no answer
    // holds a Jakarta address. Then they come back and every server must return to Jakarta before the next run.
    console.log(`\nfail over: ${FAILOVER_RUNS} run(s); both Jakarta model servers SIGKILLed, each server polled every 100 ms from 36.66.0.0/24`);
    const failovers = new Map<Server, number[]>(live().map((s) => [s, []]));
    for (let run = 1; run <= FAILOVER_RUNS; run++) {
      const t0 = Date.now();
      await Promise.all(jkt.endpoints.map((e) => stopProc(sims.get(e.zone)!.proc!)));
      await Promise.all(
        live()
          .filter((s) => s.health)
          .map(async (s) => {
            for (;;) {
              const a = await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 500);
              if (a[0] !== 'timeout' && !a.some((x) => jktAddresses.has(x))) return failovers.get(s)!.push((Date.now() - t0) / 1000);
              if (Date.now() - t0 > 120_000) return failovers.get(s)!.push(NaN);
              await sleep(100);
            }
          }),
      );
      console.log(`run ${run}: ${live().filter((s) => s.health).map((s) => `${s.name} ${failovers.get(s)!.at(-1)!.toFixed(2)} s`).join(', ')}`);
      for (const e of jkt.endpoints) sims.get(e.zone)!.proc = await startSim(sims.get(e.zone)!.port);
      const t1 = Date.now();
      for (const s of live().filter((x) => x.health))
        while (!(await ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 500)).some((x) => jktAddresses.has(x)) && Date.now() - t1 < 180_000) await sleep(200);
      // gdnsd answers its first choice when every region is down too: give its rise (4 checks × 3 s) time to be real.
      await sleep(15_000);
    }

    // The table.
    const a = { qps: median(results.get(arus)?.map((r) => r.qps) ?? []), p99: median(results.get(arus)?.map((r) => r.p99ms) ?? []), rss: rss.get(arus) ?? NaN, fo: median(failovers.get(arus) ?? []) };
    const n = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
    const ratio = (x: number, base: number) => (Number.isFinite(x) && Number.isFinite(base) && base > 0 ? (x / base).toFixed(2) : '–');
    const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
    console.log(`\n${new Date().toISOString().slice(0, 10)}, ${hostname()}: ${cpus().length} × ${cpu}; median of ${RUNS} × ${SECONDS} s (load) and ${FAILOVER_RUNS} fail-overs\n`);
    console.log('| server | answered q/s | × Arus | p99 ms | × Arus | RSS MiB | × Arus | fail over s | × Arus |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const s of servers) {
      if (s.failed) {
        console.log(`| ${s.label} | not run: ${s.failed.replace(/\|/g, '/').slice(0, 200)} | | | | | | | |`);
        continue;
      }
      const rs = results.get(s) ?? [];
      const qps = median(rs.map((r) => r.qps));
      const p99 = median(rs.map((r) => r.p99ms));
      const mem = rss.get(s) ?? NaN;
      const fo = s.health ? median(failovers.get(s) ?? []) : NaN;
      const foText = s.health ? n(fo, 2) : 'n/a: no health checks';
      console.log(`| ${s.label} | ${n(qps)} | ${ratio(qps, a.qps)} | ${n(p99, 2)} | ${ratio(p99, a.p99)} | ${n(mem, 1)} | ${ratio(mem, a.rss)} | ${foText} | ${s.health ? ratio(fo, a.fo) : '–'} |`);
    }
    console.log('\nhow each ran:');
    for (const s of servers) for (const note of s.notes) console.log(`- ${note}`);
    console.log(`- fail over, every run: ${servers.filter((s) => failovers.has(s) && s.health).map((s) => `${s.name} ${failovers.get(s)!.map((x) => x.toFixed(2)).join('/')}`).join('; ')}`);
  } finally {
    stopping = true;
    await Promise.all([...servers.map((s) => s.proc), ...[...sims.values()].map((s) => s.proc)].filter((p): p is ChildProcess => !!p).map((p) => stopProc(p, 'SIGTERM')));
    socket.close();
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

function version(cmd: string, args: string[], re: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? '';
}

function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  proc.removeAllListeners('exit');
  return new Promise((r) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    proc.once('exit', () => (clearTimeout(t), r()));
    proc.kill(signal);
  });
}

// Whatever ends this process, no server it started outlives it.
process.on('exit', () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
