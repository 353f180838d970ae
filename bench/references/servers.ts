// The servers under test, each started from the shared configuration in its
// own way: Arus (`arus up`: with one DNS worker thread, pinned like the
// others; with two, not pinned; with --workers 0, the responder on the shared
// loop as before), gdnsd, PowerDNS and Knot. A server that is missing or does
// not start is marked failed: a row of the table says so.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { countryLocation } from '../../src/geo/countries.js';
import { regionsWithChecks } from '../../test/helpers/regions.js';
import { SUBNETS, freePort } from '../common.js';
import { has, spawnServer, version, type Server } from './processes.js';
import { takesWorkers } from '../dns-arus.js';
import { BIN, ONLY, SERVER_CPU, ZONE } from './settings.js';
import { km, type Region, type Zone } from './shared-config.js';
import { template, zoneFile } from './zone-files.js';

/** What the servers are started from: the temporary folder, the configuration, each check's URL by address, the location database. */
export type ServerConfig = { dir: string; regions: Region[]; zone: Zone; urls: Map<string, string>; db: string; simPort: (zone: string) => number };

/** Arus with one worker first (the others are measured against it), then the other Arus rows and the references BENCH_ONLY names. */
export function planServers(): Server[] {
  const servers: Server[] = [];
  const make = (name: Server['name'], label: string, health: boolean): Server => ({ name, label, port: 0, health, notes: [], stderr: '' });
  const want = (n: string) => !ONLY || ONLY.includes(n) || n === 'arus';
  const workers = takesWorkers('up');
  servers.push(make('arus', workers ? 'Arus (`arus up --workers 1`)' : 'Arus (`arus up`)', true));
  if (workers && want('arus-w2')) servers.push(make('arus-w2', 'Arus (`arus up --workers 2`, not pinned)', true));
  if (workers && want('arus-w0')) servers.push(make('arus-w0', 'Arus (`arus up --workers 0`: before)', true));
  if (want('arus-lb')) servers.push({ ...make('arus-lb', "Arus, Jakarta behind its balancer (the demo's path; fail-over only)", true), failoverOnly: true });
  if (want('gdnsd')) servers.push(make('gdnsd', `gdnsd ${version('gdnsd', ['-V'], /gdnsd version ([\d.]+)/)}`, true));
  if (want('pdns')) servers.push(make('pdns', `PowerDNS ${version('pdns_server', ['--version'], /Authoritative Server ([\d.]+)/)}`, true));
  if (want('knot')) servers.push(make('knot', `Knot ${version('knotd', ['-V'], /version ([\d.]+)/)}`, false));
  return servers;
}

/** Starts each server on a free port, one after the other; a failure is recorded on the server, not thrown. */
export async function startServers(servers: Server[], c: ServerConfig): Promise<void> {
  for (const s of servers) {
    s.port = await freePort();
    try {
      if (s.name.startsWith('arus')) await startArus(s, c.dir, c.simPort, await freePort());
      else if (s.name === 'gdnsd') {
        if (has('gdnsd', ['-V'])) startGdnsd(s, c);
        else s.failed = 'gdnsd not installed (apt-get install gdnsd)';
      } else if (s.name === 'pdns') {
        if (has('pdns_server')) startPdns(s, c);
        else s.failed = 'pdns_server not installed (apt-get install pdns-server pdns-backend-bind pdns-backend-geoip)';
      } else if (has('knotd', ['-V'])) startKnot(s, c);
      else s.failed = 'knotd not installed (apt-get install knot knot-module-geoip)';
    } catch (err) {
      s.failed = (err as Error).message;
    }
  }
}

/** `arus up` for row `s`: --workers 1 pinned to the server's core, 2 unpinned, 0 pinned (the engine before the workers). */
async function startArus(s: Server, dir: string, simPort: (zone: string) => number, apiPort: number): Promise<void> {
  const regions = s.name === 'arus-lb' ? await behindBalancer(join(dir, 'lb'), simPort) : regionsWithChecks(dir, simPort);
  const workers = { arus: '1', 'arus-w2': '2', 'arus-w0': '0', 'arus-lb': '1' }[s.name as 'arus' | 'arus-w2' | 'arus-w0' | 'arus-lb'];
  const args = ['up', '--db', join(dir, `${s.name}.db`), '--regions', regions, '--dns-listen', `127.0.0.1:${s.port}`, '--api-listen', `127.0.0.1:${apiPort}`, '--sim', 'off'];
  if (takesWorkers('up')) args.push('--workers', workers);
  spawnServer(s, process.execPath, [BIN, ...args], { env: { ARUS_LOG_LEVEL: 'info' }, pin: s.name !== 'arus-w2' });
  // On a busy machine loading the TypeScript sources can take a while: wait for its "ready" line.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('arus up not ready in 180 s')), 180_000);
    createInterface({ input: s.proc!.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    s.proc!.once('exit', () => (clearTimeout(timer), reject(new Error(`arus up exited: ${s.stderr.slice(-500)}`))));
  });
  if (s.name === 'arus-lb') {
    s.notes.push(`${s.label}: \`arus up\` as the demo runs it: Jakarta's endpoints are its balancer's addresses (the probes check through it), the balancer in front of Jakarta's two model servers, checking them every 200 ms and reporting to control the moment none is ready; --workers 1, pinned like the others`);
    return;
  }
  const how = s.name === 'arus-w2' ? 'not pinned: its two DNS workers share both cores with dnsperf and the sims' : `pinned to CPU ${SERVER_CPU} like the references (main thread and workers alike)`;
  s.notes.push(`${s.label}: every role in one process (control, API, SQLite, 4 probe agents every 500 ms, fall 2, rise 4); --workers ${takesWorkers('up') ? workers : 'not taken by this tree'}; ${how}`);
}

/**
 * The regions with every check at its zone's model server, except Jakarta's: its endpoints are its
 * balancer's addresses (a free port on each), checked through it, and the balancer in front of the
 * two Jakarta model servers, as in the shipped demo.
 */
async function behindBalancer(dir: string, simPort: (zone: string) => number): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const regions = regionsWithChecks(dir, simPort);
  const file = join(regions, 'jkt.yaml');
  const port = await freePort();
  let text = readFileSync(file, 'utf8');
  for (const [zone, address] of [['jkt-a', '127.0.1.21'], ['jkt-b', '127.0.1.22']]) text = text.replace(`http://127.0.0.1:${simPort(zone)}/`, `http://${address}:${port}/`);
  const instances = ['jkt-a', 'jkt-b'].map((z, i) => `    - { id: jkt-gpu-${i + 1}, url: "http://127.0.0.1:${simPort(z)}", models: [llama-3-8b] }`);
  writeFileSync(file, `${text}balancer:\n  listen: ["127.0.1.21:${port}", "127.0.1.22:${port}"]\n  strategy: gpu\n  instances:\n${instances.join('\n')}\n`);
  return regions;
}

function startGdnsd(s: Server, { dir, regions, zone, urls, db }: ServerConfig): void {
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

function startPdns(s: Server, { dir, regions, zone, urls, db }: ServerConfig): void {
  const conf = join(dir, 'pdns');
  mkdirSync(conf, { recursive: true });
  writeFileSync(join(conf, 'named.conf'), `zone "${ZONE}" { type master; file "${join(conf, `${ZONE}.zone`)}"; };\n`);
  writeFileSync(join(conf, 'geo-zones.yaml'), 'domains: []\n');
  writeFileSync(join(conf, 'pdns.conf'), template('pdns.conf', { port: s.port, dir: conf, db }));
  writeFileSync(join(conf, `${ZONE}.zone`), zoneFile(zone, regions, 'pdns', urls));
  spawnServer(s, 'pdns_server', [`--config-dir=${conf}`, `--socket-dir=${conf}`]);
  s.notes.push('PowerDNS: bind backend + geoip backend (for the database only); LUA records: regions ordered by repeated pickclosest, then ifurlextup over the groups (selector all, stringmatch llama-3-8b), checks every 1 s (its minimum), no fall/rise: one failed check flips');
}

function startKnot(s: Server, { dir, regions, zone, db }: ServerConfig): void {
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
