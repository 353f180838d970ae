// The deployment files in infra/ parse, reference only what exists (objects,
// ports, volumes, secrets, compose services), run only real `arus` commands and
// flags, and watch only metrics Arus registers. Each checker is also shown a
// broken copy, to prove it can fail.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  arusEnvNames,
  checkAlertRules,
  checkCompose,
  checkDashboard,
  checkDockerfile,
  checkInvocation,
  checkK8s,
  checkPromql,
  checkScrapeConfig,
  checkTargetsAgainstCompose,
  checkUnit,
  filesUnder,
  INFRA,
  loadCatalog,
  loadCli,
  loadKustomization,
  metricNamesIn,
  parseUnit,
  parseYamlFile,
  rel,
  scrapeJobs,
  type Catalog,
  type Cli,
  type Obj,
} from './helpers/infra.js';

const clone = <T>(v: T): T => structuredClone(v);
const has = (problems: string[], pattern: RegExp) => expect(problems.some((p) => pattern.test(p)), `expected a problem matching ${pattern} in:\n${problems.join('\n')}`).toBe(true);

let cli: Cli;
let env: Set<string>;
let catalog: Catalog;
let jobs: Set<string>;

beforeAll(async () => {
  const prom = parseYamlFile(join(INFRA, 'prometheus/prometheus.yml'))[0];
  const k8sProm = parseYamlFile(join(INFRA, 'prometheus/kubernetes-scrape.yml'))[0];
  const a = scrapeJobs(prom);
  const b = scrapeJobs(k8sProm);
  // Alerts and the dashboard must work with both: only jobs both define.
  jobs = new Set([...a.jobs].filter((j) => b.jobs.has(j)));
  const targetLabels = [...a.targetLabels, ...b.targetLabels];
  for (const f of filesUnder(join(INFRA, 'prometheus/targets'), /\.ya?ml$/)) for (const g of parseYamlFile(f).flat()) targetLabels.push(...Object.keys(g.labels ?? {}));
  [cli, catalog] = await Promise.all([loadCli(), loadCatalog(targetLabels)]);
  env = arusEnvNames();
}, 60_000);

describe('every file in infra/ parses', () => {
  const files = filesUnder(INFRA, /\.(ya?ml|json)$/);
  it('finds the YAML and JSON files', () => expect(files.length).toBeGreaterThan(15));
  it.each(files.map((f) => [rel(f), f]))('%s', (_, file) => {
    if (file.endsWith('.json')) expect(() => JSON.parse(readFileSync(file, 'utf8'))).not.toThrow();
    else expect(parseYamlFile(file).length).toBeGreaterThan(0);
  });
});

describe('the CLI checker', () => {
  it('reads the real command table', () => {
    for (const c of ['up', 'control', 'dns', 'probe', 'balancer', 'sim', 'apply', 'token']) expect(cli.commands.has(c)).toBe(true);
    expect(cli.commands.get('probe')).toMatch(/--region/);
  });
  it('accepts real flags and rejects unknown commands, flags and listen addresses', () => {
    expect(checkInvocation({ source: 't', argv: ['probe', '--region', 'sg', '--control', 'http://c:8080', '--id', 'x'] }, cli)).toEqual([]);
    has(checkInvocation({ source: 't', argv: ['probes', '--region', 'sg'] }, cli), /not an arus command/);
    has(checkInvocation({ source: 't', argv: ['control', '--api-port', '8080'] }, cli), /no option --api-port/);
    has(checkInvocation({ source: 't', argv: ['up', '--dns-listen', '0.0.0.0'] }, cli), /is not HOST:PORT/);
  });
  it('lets only the listed pending flags through while they are absent', () => {
    const argv = ['dns', '--control', 'http://control:8080', '--snapshot', '/x.json'];
    expect(checkInvocation({ source: 't', argv }, cli)).toEqual([]);
    if (!/--control(?![\w-])/.test(cli.commands.get('dns')!)) has(checkInvocation({ source: 't', argv }, cli, {}), /no option --control/);
    has(checkInvocation({ source: 't', argv: ['probe', '--snapshot', 'x'] }, cli), /no option --snapshot/);
  });
});

describe('metrics', () => {
  it('the catalog comes from the real registries', () => {
    for (const n of ['arus_dns_queries_total', 'arus_events_total', 'arus_failovers_total', 'arus_probe_results_total', 'arus_dns_decision_seconds_bucket', 'arus_balancer_requests_total', 'arus_balancer_instances', 'process_resident_memory_bytes', 'up'])
      expect(catalog.names.has(n), n).toBe(true);
    expect(catalog.values.get('arus_dns_queries_total')?.get('rcode')).toContain('SERVFAIL');
    expect(catalog.values.get('arus_balancer_instances')?.get('state')).toContain('ready');
    for (const k of ['region.down', 'fleet.blind', 'fleet.sighted', 'failover', 'agent.silent', 'capacity.shedding']) expect(catalog.eventKinds.has(k), k).toBe(true);
  });
  it('reads series names out of PromQL', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le, region) (rate(arus_dns_decision_seconds_bucket{job="arus-dns"}[$__rate_interval])))')).toEqual(['arus_dns_decision_seconds_bucket']);
    expect(metricNamesIn('a_total > 0 and ignoring(state) b{x="y"} or vector(0) unless on() c[5m] offset 1h')).toEqual(['a_total', 'b', 'c']);
  });
  it('rejects unknown metrics, labels, label values and jobs, and unbalanced expressions', () => {
    expect(checkPromql('sum(rate(arus_dns_queries_total{job="arus-dns", rcode="SERVFAIL"}[5m]))', catalog, 't', jobs)).toEqual([]);
    has(checkPromql('rate(arus_dns_querys_total[5m])', catalog, 't', jobs), /arus_dns_querys_total is not registered/);
    has(checkPromql('rate(arus_dns_queries_total{zone="x"}[5m])', catalog, 't', jobs), /has no label zone/);
    has(checkPromql('rate(arus_dns_queries_total{rcode="SERVFAILED"}[5m])', catalog, 't', jobs), /"SERVFAILED" matches no known rcode/);
    has(checkPromql('increase(arus_events_total{kind=~"region.down|region.dead"}[5m])', catalog, 't', jobs), /"region.dead" matches no known kind/);
    has(checkPromql('up{job="arus-dnz"}', catalog, 't', jobs), /matches no known job/);
    has(checkPromql('sum(rate(arus_dns_queries_total[5m])', catalog, 't', jobs), /unclosed/);
  });
});

describe('Prometheus', () => {
  const dir = join(INFRA, 'prometheus');
  it('scrape configs reference rule and target files that exist', () => {
    expect(checkScrapeConfig(parseYamlFile(join(dir, 'prometheus.yml'))[0], dir, 'prometheus.yml')).toEqual([]);
    expect(checkScrapeConfig(parseYamlFile(join(dir, 'kubernetes-scrape.yml'))[0], dir, 'kubernetes-scrape.yml')).toEqual([]);
    const broken = clone(parseYamlFile(join(dir, 'prometheus.yml'))[0]);
    broken.rule_files = ['alert.yml'];
    broken.scrape_configs[0].file_sd_configs[0].files = ['targets/nope.yml'];
    const problems = checkScrapeConfig(broken, dir, 'prometheus.yml');
    has(problems, /rule file alert.yml/);
    has(problems, /targets\/nope.yml does not exist/);
  });
  it('every job the alerts need is defined for compose/systemd and for Kubernetes', () => {
    expect([...jobs].sort()).toEqual(['arus-balancer', 'arus-control', 'arus-dns']);
  });
  it('file-based targets name compose services on ports they listen on', () => {
    const compose = parseYamlFile(join(INFRA, 'compose/compose.yaml'))[0];
    const targets = filesUnder(join(dir, 'targets'), /\.yml$/).flatMap((f) => parseYamlFile(f).flat().flatMap((g: Obj) => g.targets));
    expect(checkTargetsAgainstCompose(targets, compose)).toEqual([]);
    has(checkTargetsAgainstCompose(['dns-1:9154'], compose), /does not listen on 9154/);
    has(checkTargetsAgainstCompose(['dns-3:9153'], compose), /no compose service dns-3/);
  });
  it('Kubernetes jobs keep the components the manifests annotate for scraping', () => {
    const { objects } = loadKustomization(join(INFRA, 'k8s'));
    const scraped = new Set(objects.filter((o) => o.spec?.template?.metadata?.annotations?.['prometheus.io/scrape'] === 'true').map((o) => o.spec.template.metadata.labels['app.kubernetes.io/component']));
    const kept = new Set<string>();
    for (const j of parseYamlFile(join(dir, 'kubernetes-scrape.yml'))[0].scrape_configs)
      for (const r of j.relabel_configs) if (r.source_labels?.[0] === '__meta_kubernetes_pod_label_app_kubernetes_io_component') kept.add(r.regex);
    expect([...kept].sort()).toEqual([...scraped].sort());
    for (const c of kept) expect(jobs.has(`arus-${c}`)).toBe(true);
  });
  it('alert rules parse, include region down, fleet blind and failover storm, and use registered metrics', () => {
    const rules = parseYamlFile(join(dir, 'alerts.yml'))[0];
    expect(checkAlertRules(rules, catalog, jobs, 'alerts.yml')).toEqual([]);
  });
  it('a broken copy of the rules is rejected', () => {
    const rules = clone(parseYamlFile(join(dir, 'alerts.yml'))[0]);
    const all: Obj[] = rules.groups.flatMap((g: Obj) => g.rules);
    all.find((r) => r.alert === 'ArusFleetBlind')!.alert = 'ArusFleetDark';
    all.find((r) => r.alert === 'ArusFailoverStorm')!.expr = 'sum(increase(arus_failover_total[15m])) > 3';
    all.find((r) => r.alert === 'ArusControlDown')!.labels.severity = 'page';
    all.find((r) => r.alert === 'ArusDnsServfail')!.for = '5 minutes';
    const problems = checkAlertRules(rules, catalog, jobs, 'alerts.yml');
    has(problems, /ArusFleetBlind is missing/);
    has(problems, /arus_failover_total is not registered/);
    has(problems, /severity must be/);
    has(problems, /is not a duration/);
  });
  it.skipIf(spawnSync('promtool', ['--version']).error !== undefined)('promtool accepts the config and the rules', () => {
    execFileSync('promtool', ['check', 'rules', join(dir, 'alerts.yml')]);
    execFileSync('promtool', ['check', 'config', '--syntax-only', join(dir, 'prometheus.yml')]);
  });
});

describe('Grafana', () => {
  const file = join(INFRA, 'grafana/dashboards/arus.json');
  it('the dashboard parses and every query reads registered metrics', () => {
    const dash = JSON.parse(readFileSync(file, 'utf8'));
    expect(dash.panels.length).toBeGreaterThan(10);
    expect(checkDashboard(dash, catalog, jobs, 'arus.json')).toEqual([]);
  });
  it('a broken copy is rejected', () => {
    const dash = JSON.parse(readFileSync(file, 'utf8'));
    const panel = dash.panels.find((p: Obj) => p.targets?.length);
    panel.targets[0].expr = 'sum(rate(arus_dns_answer_total{region=~"$regin"}[5m]))';
    dash.panels[2].id = dash.panels[1].id;
    dash.templating.list = dash.templating.list.filter((v: Obj) => v.name !== 'DS_PROMETHEUS');
    const problems = checkDashboard(dash, catalog, jobs, 'arus.json');
    has(problems, /arus_dns_answer_total is not registered/);
    has(problems, /variable \$regin is not defined/);
    has(problems, /ids must be unique/);
    has(problems, /datasource variable DS_PROMETHEUS/);
  });
  it('provisioning points Grafana at the dashboards folder compose mounts', () => {
    const compose = parseYamlFile(join(INFRA, 'compose/compose.yaml'))[0];
    const provider = parseYamlFile(join(INFRA, 'grafana/provisioning/dashboards/arus.yaml'))[0].providers[0];
    expect(compose.services.grafana.volumes).toContain(`../grafana/dashboards:${provider.options.path}:ro`);
    const ds = parseYamlFile(join(INFRA, 'grafana/provisioning/datasources/prometheus.yaml'))[0].datasources[0];
    expect(ds.type).toBe('prometheus');
    expect(new URL(ds.url).hostname).toBe('prometheus');
  });
});

describe('Kubernetes', () => {
  const dir = join(INFRA, 'k8s');
  const load = () => loadKustomization(dir);
  const ctx = () => ({ generated: load().generated, cli, env });

  it('the kustomization lists every manifest, and its generators have their files', () => expect(load().problems).toEqual([]));
  it('the manifests reference only what exists and run real arus commands', () => expect(checkK8s(load().objects, ctx())).toEqual([]));
  it('has the roles the design asks for', () => {
    const { objects } = load();
    const kinds = (component: string) => objects.filter((o) => o.metadata?.labels?.['app.kubernetes.io/component'] === component).map((o) => o.kind);
    expect(kinds('control')).toEqual(expect.arrayContaining(['StatefulSet', 'Service', 'ConfigMap']));
    expect(objects.find((o) => o.kind === 'StatefulSet')!.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    expect(kinds('dns')).toEqual(expect.arrayContaining(['Deployment', 'Service', 'PodDisruptionBudget']));
    const dnsProtocols = objects.filter((o) => o.kind === 'Service' && o.metadata.labels['app.kubernetes.io/component'] === 'dns').flatMap((s) => s.spec.ports.map((p: Obj) => `${p.port}/${p.protocol}`));
    expect(dnsProtocols.sort()).toEqual(['53/TCP', '53/UDP']);
    const regionsOf = (c: string) => objects.filter((o) => o.kind === 'Deployment' && o.metadata.labels['app.kubernetes.io/component'] === c).map((o) => o.metadata.labels['arus-region']).sort();
    expect(regionsOf('probe')).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    expect(regionsOf('balancer')).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
  });
  it('a broken copy is rejected', () => {
    const objects = clone(load().objects);
    const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
    find('Service', 'arus-dns-udp').spec.selector['app.kubernetes.io/component'] = 'dnss';
    find('Service', 'arus-dns-tcp').spec.ports[0].targetPort = 'dns-tpc';
    const control = find('StatefulSet', 'arus-control');
    control.spec.serviceName = 'arus-control';
    const c = control.spec.template.spec.containers[0];
    c.env.find((e: Obj) => e.name === 'ARUS_ADMIN_TOKEN').valueFrom.secretKeyRef.key = 'ADMIN_TOKEN';
    c.env.push({ name: 'ARUS_DATABASE', value: '/x' });
    c.args = c.args.map((a: string) => (a === '--api-listen' ? '--listen-api' : a));
    c.volumeMounts.find((m: Obj) => m.name === 'data').readOnly = true;
    control.spec.template.spec.volumes.find((v: Obj) => v.name === 'regions').configMap.name = 'arus-region';
    const dns = find('Deployment', 'arus-dns');
    dns.spec.template.spec.securityContext.sysctls = [];
    dns.spec.template.spec.containers[0].securityContext.capabilities = { drop: ['ALL'], add: ['NET_ADMIN'] };
    dns.spec.template.spec.containers[0].readinessProbe = { httpGet: { path: '/healthz', port: 'health' } };
    const probe = find('Deployment', 'arus-probe-mnl').spec.template.spec;
    probe.containers[0].args = probe.containers[0].args.map((a: string) => (a === 'mnl' ? 'hkg' : a.replace('arus-control', 'control')));
    probe.securityContext.runAsNonRoot = false;
    find('Deployment', 'arus-balancer-sg').spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;

    const problems = checkK8s(objects, ctx());
    has(problems, /Service\/arus-dns-udp: selector .* matches no pod template/);
    has(problems, /Service\/arus-dns-tcp: port dns-tcp targets dns-tpc\/TCP/);
    has(problems, /serviceName arus-control must be headless/);
    has(problems, /Secret arus-tokens has no key ADMIN_TOKEN/);
    has(problems, /ARUS_DATABASE is read by nothing/);
    has(problems, /has no option --listen-api/);
    has(problems, /--db \/var\/lib\/arus\/arus.db is not on a writable volume/);
    has(problems, /no ConfigMap arus-region/);
    has(problems, /binds port 53 as non-root/);
    has(problems, /adds capability NET_ADMIN/);
    has(problems, /probe uses port health/);
    has(problems, /--region hkg is not a region/);
    has(problems, /--control http:\/\/control:8080: no Service control/);
    has(problems, /arus-probe-mnl container probe: runAsNonRoot must be true/);
    has(problems, /readOnlyRootFilesystem must be true/);

    const regions = find('ConfigMap', 'arus-regions');
    regions.data['sg.yaml'] = regions.data['sg.yaml'].replace('203.0.113.11', '203.0.113.300');
    has(checkK8s(objects, ctx()), /sg.yaml: zones\[0\].endpoints\[0\].address: must be an IPv4 or IPv6 address/);
  });
  it('a manifest missing from the kustomization is reported', () => {
    const k = parseYamlFile(join(dir, 'kustomization.yaml'))[0];
    expect(k.resources).toContain('dns.yaml');
    expect(k.secretGenerator[0].envs).toEqual(['tokens.env']);
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toMatch(/^tokens\.env$/m);
  });
  it.skipIf(spawnSync('kubectl', ['version', '--client']).error !== undefined)('kubectl kustomize renders it', () => {
    const copy = mkdtempSync(join(tmpdir(), 'arus-k8s-'));
    try {
      cpSync(dir, copy, { recursive: true });
      copyFileSync(join(dir, 'tokens.env.example'), join(copy, 'tokens.env'));
      const out = execFileSync('kubectl', ['kustomize', copy], { encoding: 'utf8' });
      expect(out).toMatch(/kind: StatefulSet/);
      expect(out).toMatch(/name: arus-tokens-\w+/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('compose', () => {
  const dir = join(INFRA, 'compose');
  const load = () => parseYamlFile(join(dir, 'compose.yaml'))[0];
  it('references only declared services, volumes, networks and listening ports; its regions validate', () => {
    expect(checkCompose(load(), dir, { cli, env })).toEqual([]);
  });
  it('is a multi-node stack: two DNS nodes, and a probe and balancers per region', () => {
    const cmds = Object.values<Obj>(load().services).map((s) => s.command?.[0]);
    expect(cmds.filter((c) => c === 'dns')).toHaveLength(2);
    expect(cmds.filter((c) => c === 'control')).toHaveLength(1);
    expect(cmds.filter((c) => c === 'probe').length).toBeGreaterThanOrEqual(2);
    expect(cmds.filter((c) => c === 'balancer').length).toBeGreaterThanOrEqual(2);
  });
  it('a broken copy is rejected', () => {
    const doc = clone(load());
    doc.services['dns-1'].depends_on = { contrl: { condition: 'service_healthy' } };
    doc.services['dns-2'].sysctls = {};
    doc.services['dns-2'].volumes = ['dns-3-data:/var/lib/arus'];
    doc.services['probe-sg'].command = ['probe', '--region', 'sgp', '--control', 'http://control:8081'];
    doc.services['balancer-sg-a'].networks = { arus: { ipv4_address: '172.28.53.12' } };
    doc.services['control'].user = '0:0';
    doc.services['sim-jkt'].command = ['sim', '--listen', '0.0.0.0:9211'];
    const problems = checkCompose(doc, dir, { cli, env });
    has(problems, /depends_on contrl/);
    has(problems, /dns-2: binds 53 as non-root/);
    has(problems, /volume dns-3-data is not declared/);
    has(problems, /--region sgp is not in the configuration/);
    has(problems, /--control http:\/\/control:8081: no service control listening on 8081/);
    has(problems, /172.28.53.12 is also/);
    has(problems, /control: must run as a non-root user/);
    has(problems, /endpoint 172.28.53.11 is no service's address/);
    has(problems, /instance http:\/\/sim-jkt:9212: no service sim-jkt listening on 9212/);
  });
});

describe('systemd units', () => {
  const units = filesUnder(join(INFRA, 'systemd'), /\.service$/);
  it('there is one for each server role', () => {
    expect(units.map((u) => u.split('/').at(-1)).sort()).toEqual(['arus-balancer@.service', 'arus-control.service', 'arus-dns.service', 'arus-probe@.service']);
  });
  it.each(units.map((u) => [u.split('/').at(-1)!, u]))('%s has its sections, runs a real arus command and holds least privilege', (name, file) => {
    expect(checkUnit(name, readFileSync(file, 'utf8'), { cli, env })).toEqual([]);
  });
  it('the DNS node binds 53 with CAP_NET_BIND_SERVICE alone', () => {
    const unit = parseUnit(readFileSync(join(INFRA, 'systemd/arus-dns.service'), 'utf8'));
    const service = Object.fromEntries(unit.get('Service')!);
    expect(service).toMatchObject({ AmbientCapabilities: 'CAP_NET_BIND_SERVICE', CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE', DynamicUser: 'yes', NoNewPrivileges: 'yes', ProtectSystem: 'strict' });
  });
  it('a broken copy is rejected', () => {
    const dns = readFileSync(join(INFRA, 'systemd/arus-dns.service'), 'utf8');
    const broken = dns
      .replace('AmbientCapabilities=CAP_NET_BIND_SERVICE', 'AmbientCapabilities=')
      .replace('CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN')
      .replace('NoNewPrivileges=yes', '')
      .replace('--snapshot /var/lib/arus-dns/', '--snapshot /etc/arus/')
      .replace('--metrics-listen', '--metric-listen')
      .replace('${CONTROL_URL}', '${CONTROL}')
      .replace(/\[Install\][^]*$/, '');
    const problems = checkUnit('arus-dns.service', broken, { cli, env });
    has(problems, /no \[Install\] section/);
    has(problems, /AmbientCapabilities=CAP_NET_BIND_SERVICE/);
    has(problems, /CapabilityBoundingSet=CAP_NET_BIND_SERVICE and nothing more/);
    has(problems, /NoNewPrivileges=yes/);
    has(problems, /--snapshot \/etc\/arus\/snapshot.json is outside StateDirectory/);
    has(problems, /no option --metric-listen/);
    has(problems, /\$\{CONTROL\}, which no Environment= sets/);
    has(checkUnit('arus-probe@.service', readFileSync(join(INFRA, 'systemd/arus-probe@.service'), 'utf8').replace('CapabilityBoundingSet=', 'CapabilityBoundingSet=CAP_NET_RAW'), { cli, env }), /CapabilityBoundingSet= \(empty/);
  });
  it.skipIf(spawnSync('systemd-analyze', ['--version']).error !== undefined)('systemd-analyze verify has nothing to say', () => {
    for (const f of units) {
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', f], { encoding: 'utf8' });
      const said = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(f.split('/').at(-1)!));
      expect(said, f).toEqual([]);
    }
  });
});

describe('Dockerfile', () => {
  const file = join(INFRA, 'docker/Dockerfile');
  const ignore = () => readFileSync(join(INFRA, 'docker/Dockerfile.dockerignore'), 'utf8');
  it('is multi-stage, non-root, has a health check, and runs real arus commands', () => {
    expect(checkDockerfile(readFileSync(file, 'utf8'), ignore(), { cli, env })).toEqual([]);
  });
  it('a broken copy is rejected', () => {
    const broken = readFileSync(file, 'utf8')
      .replace('USER arus:arus', 'USER root')
      .replace(/HEALTHCHECK[^]*?\n(?=ENTRYPOINT)/, '')
      .replace('COPY --from=deps', 'COPY --from=build')
      .replace('COPY migrations ./migrations', 'COPY migration ./migrations')
      .replace('"--api-listen"', '"--api"');
    const problems = checkDockerfile(broken, ignore(), { cli, env });
    has(problems, /non-root USER/);
    has(problems, /no HEALTHCHECK/);
    has(problems, /--from=build names no earlier stage/);
    has(problems, /COPY migration: not in the repository/);
    has(problems, /no option --api/);
    has(checkDockerfile(readFileSync(file, 'utf8'), ignore().replace('!migrations/\n', ''), { cli, env }), /COPY migrations is excluded/);
    has(checkDockerfile(readFileSync(file, 'utf8').replace(/FROM node:\$\{NODE_VERSION\}-bookworm-slim AS deps[^]*?(?=FROM)/, ''), ignore(), { cli, env }), /multi-stage/);
  });
});

describe('the container health check', () => {
  const script = join(INFRA, 'docker/healthcheck.mjs');
  // Asynchronous: the servers answering it live in this process.
  const check = (url: string) =>
    new Promise<number | null>((resolve) => execFile(process.execPath, [script], { env: { ...process.env, HEALTHCHECK_URL: url, HEALTHCHECK_TIMEOUT_MS: '1000' } }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)));
  const listen = (server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }) =>
    new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

  it('passes on a 2xx and fails on a 5xx or nothing listening', async () => {
    const server = createHttpServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 503).end());
    const port = await listen(server);
    try {
      expect(await check(`http://127.0.0.1:${port}/healthz`)).toBe(0);
      expect(await check(`http://127.0.0.1:${port}/broken`)).toBe(1);
    } finally {
      server.close();
    }
    expect(await check(`http://127.0.0.1:${port}/healthz`)).toBe(1);
  });

  it('dns+tcp passes on a DNS reply with our id and fails on garbage', async () => {
    let reply = (q: Buffer) => Buffer.concat([Buffer.from([0, 12]), q.subarray(2, 4), Buffer.from([0x84, 0x05, 0, 0, 0, 0, 0, 0, 0, 0])]);
    const server = createTcpServer((sock) => sock.once('data', (d) => sock.end(reply(d))));
    const port = await listen(server);
    try {
      expect(await check(`dns+tcp://127.0.0.1:${port}`)).toBe(0);
      reply = () => Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n');
      expect(await check(`dns+tcp://127.0.0.1:${port}`)).toBe(1);
    } finally {
      server.close();
    }
  });
});

describe('infra/README.md', () => {
  it('describes every file', () => {
    const readme = readFileSync(join(INFRA, 'README.md'), 'utf8');
    // Backticked paths in the table; `*` stands for any part of a path.
    const entries = [...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => new RegExp(`^${m[1].replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`));
    const missing = filesUnder(INFRA, /./)
      .map((f) => rel(f).replace(/^infra\//, ''))
      .filter((f) => f !== 'README.md' && f !== 'k8s/tokens.env' && !entries.some((e) => e.test(f)));
    expect(missing).toEqual([]);
    has(['k8s/forgotten.yaml'].filter((f) => !entries.some((e) => e.test(f))), /forgotten/);
  });
});
