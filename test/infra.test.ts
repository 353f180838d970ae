// The deployment files in infra/ parse, reference only what exists (objects,
// ports, volumes, secrets, compose services), run only real `arus` commands and
// flags, watch only metrics Arus registers, and wire TLS as the roles need it
// (https links, a certificate of its own per identity, nothing in plain text
// off loopback, Prometheus over TLS). Each checker is also shown a broken
// copy, to prove it can fail. The image is replayed without Docker, and the
// certificates `arus certs init` makes are checked with openssl.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { identityOf } from '../src/tls/identity.js';
import { arus, freePort, readyLine, stopProcess, until } from './helpers/arus.js';
import { tlsFetch } from './helpers/credentials.js';
import {
  checkBudgets,
  checkEtcdFlags,
  checkEtcdMember,
  checkEtcdMembers,
  checkQuorumShapes,
  checkReplicas,
  composeEtcdRuns,
  etcdEnvFlags,
  etcdHelpFlags,
  k8sEtcdRuns,
  REPLICA_METRICS,
  replayCompose,
  type EtcdRun,
  type Replayed,
} from './helpers/infra-etcd.js';
import {
  arusCommand,
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
  flagValue,
  INFRA,
  loadCatalog,
  loadCli,
  loadKustomization,
  metricNamesIn,
  parseUnit,
  parseYamlFile,
  regionsFromConfigMaps,
  rel,
  replayDockerfile,
  scrapeJobs,
  type Catalog,
  type Cli,
  type Obj,
} from './helpers/infra.js';
import {
  certInfoOf,
  certsInitFiles,
  checkCertificates,
  checkComposeCerts,
  checkScrapeTls,
  checkTls,
  composeCertsRuns,
  composeProvides,
  composeRuns,
  covers,
  k8sRuns,
  principalOf,
  SHARED_TOKENS,
  unitRun,
  type CertInfo,
  type RoleRun,
} from './helpers/infra-tls.js';

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
  [cli, catalog] = await Promise.all([loadCli(), loadCatalog(targetLabels, REPLICA_METRICS.map((n) => [n, 'gauge', []]))]);
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
  it('the probe\'s https checks trust its --ca: the manifests give the balancers\' CA no other way', () => {
    expect(cli.commands.get('probe')).toMatch(/HTTPS checks trust --ca/);
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
    expect(kinds('control')).toEqual(expect.arrayContaining(['StatefulSet', 'Service', 'ConfigMap', 'PodDisruptionBudget']));
    expect(kinds('etcd')).toEqual(expect.arrayContaining(['StatefulSet', 'Service', 'PodDisruptionBudget', 'Certificate']));
    const sts = (name: string) => objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === name)!;
    expect(sts('arus-control').spec.replicas).toBe(3);
    expect(sts('arus-etcd').spec.replicas).toBe(3);
    for (const name of ['arus-control', 'arus-etcd']) expect(sts(name).spec.volumeClaimTemplates[0].metadata.name).toBe('data');
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
    c.env.push({ name: 'ARUS_DATABASE', value: '/x' }, { name: 'HEALTHCHECK_URI', value: '/x' });
    c.args = c.args.map((a: string) => a.replace(/^--api-listen/, '--listen-api'));
    c.volumeMounts.find((m: Obj) => m.name === 'data').readOnly = true;
    control.spec.template.spec.volumes.find((v: Obj) => v.name === 'regions').configMap.name = 'arus-region';
    const dns = find('Deployment', 'arus-dns-1');
    dns.spec.template.spec.securityContext.sysctls = [];
    dns.spec.template.spec.containers[0].securityContext.capabilities = { drop: ['ALL'], add: ['NET_ADMIN'] };
    dns.spec.template.spec.containers[0].readinessProbe = { httpGet: { path: '/healthz', port: 'health' } };
    const probe = find('Deployment', 'arus-probe-mnl').spec.template.spec;
    probe.containers[0].args = probe.containers[0].args.map((a: string) => a.replace('--region=mnl', '--region=hkg').replace('$(CONTROL_URLS)', 'https://control:8080'));
    probe.securityContext.runAsNonRoot = false;
    find('Deployment', 'arus-balancer-sg').spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;

    const problems = checkK8s(objects, ctx());
    has(problems, /Service\/arus-dns-udp: selector .* matches no pod template/);
    has(problems, /Service\/arus-dns-tcp: port dns-tcp targets dns-tpc\/TCP/);
    has(problems, /serviceName arus-control must be headless/);
    has(problems, /Secret arus-tokens has no key ADMIN_TOKEN/);
    has(problems, /ARUS_DATABASE is read by nothing/);
    has(problems, /HEALTHCHECK_URI is read by nothing/);
    has(problems, /has no option --listen-api/);
    has(problems, /--db \/var\/lib\/arus\/read-model.db is not on a writable volume/);
    has(problems, /no ConfigMap arus-region/);
    has(problems, /binds port 53 as non-root/);
    has(problems, /adds capability NET_ADMIN/);
    has(problems, /probe uses port health/);
    has(problems, /--region hkg is not a region/);
    has(problems, /--control https:\/\/control:8080: no Service control/);
    has(problems, /arus-probe-mnl container probe: runAsNonRoot must be true/);
    has(problems, /readOnlyRootFilesystem must be true/);
    find('Deployment', 'arus-probe-sg').spec.template.spec.volumes.find((v: Obj) => v.name === 'tls').secret.secretName = 'arus-probe-sg-tls';
    has(checkK8s(objects, ctx()), /volume tls: no Secret arus-probe-sg-tls/);

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
  it("cert-manager's rfc2136 Issuer (infra/cert-manager) reaches control's update listener, with the one algorithm Arus takes, for names of the zone", () => {
    const { objects } = load();
    const [issuer, cert] = parseYamlFile(join(INFRA, 'cert-manager/issuer.yaml'));
    const rfc = issuer.spec.acme.solvers[0].dns01.rfc2136;
    expect(rfc.tsigAlgorithm).toBe('HMACSHA256');
    const [host, port] = rfc.nameserver.split(':');
    const service = objects.find((o) => o.kind === 'Service' && `${o.metadata.name}.arus.svc.cluster.local` === host)!;
    expect(service, rfc.nameserver).toBeDefined();
    const ports = service.spec.ports.filter((p: { port: number }) => p.port === Number(port));
    expect(ports.map((p: { protocol: string }) => p.protocol).sort()).toEqual(['TCP', 'UDP']);
    const control = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'arus-control')!.spec.template.spec.containers[0];
    const listen = (control.args as string[]).find((a) => a.startsWith('--update-listen='))!;
    for (const p of ports) expect(control.ports.find((c: { name: string }) => c.name === p.targetPort), p.targetPort).toMatchObject({ containerPort: Number(listen.split(':').at(-1)), protocol: p.protocol });
    expect(control.env.find((e: { name: string }) => e.name === 'ARUS_TSIG_KEY').valueFrom.secretKeyRef).toEqual({ name: 'arus-tokens', key: 'ARUS_TSIG_KEY' });
    expect(readFileSync(join(dir, 'tokens.env.example'), 'utf8')).toMatch(/^ARUS_TSIG_KEY=/m);
    const apex = (parseAllDocuments(objects.find((o) => o.kind === 'ConfigMap' && o.data?.['zone.yaml'])!.data['zone.yaml'])[0].toJS() as { apex: string }).apex;
    expect(issuer.spec.acme.solvers[0].selector.dnsZones).toEqual([apex]);
    expect(cert.spec.issuerRef).toEqual({ name: issuer.metadata.name, kind: 'Issuer' });
    for (const n of cert.spec.dnsNames as string[]) expect(n === apex || n.endsWith(`.${apex}`), n).toBe(true);
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
  it('is a multi-node stack: three etcd members, three control replicas, two DNS nodes, and a probe and balancers per region', () => {
    const cmds = Object.values<Obj>(load().services).map((s) => s.command?.[0]);
    expect(cmds.filter((c) => c === 'dns')).toHaveLength(2);
    expect(cmds.filter((c) => c === 'control')).toHaveLength(3);
    expect(cmds.filter((c) => c === '/usr/local/bin/etcd')).toHaveLength(3);
    expect(cmds.filter((c) => c === 'probe').length).toBeGreaterThanOrEqual(2);
    expect(cmds.filter((c) => c === 'balancer').length).toBeGreaterThanOrEqual(2);
  });
  it('a broken copy is rejected', () => {
    const doc = clone(load());
    doc.services['dns-1'].depends_on = { contrl: { condition: 'service_healthy' } };
    doc.services['dns-2'].sysctls = {};
    doc.services['dns-2'].volumes = ['dns-3-data:/var/lib/arus'];
    doc.services['probe-sg'].command = ['probe', '--region', 'sgp', '--control', 'https://control-1:8080,http://control-2:8081'];
    doc.services['balancer-sg-a'].networks = { arus: { ipv4_address: '172.28.53.12' } };
    doc.services['control-1'].user = '0:0';
    doc.services['sim-jkt'].command = ['sim', '--listen', '0.0.0.0:9211'];
    const problems = checkCompose(doc, dir, { cli, env });
    has(problems, /depends_on contrl/);
    has(problems, /dns-2: binds 53 as non-root/);
    has(problems, /volume dns-3-data is not declared/);
    has(problems, /--region sgp is not in the configuration/);
    has(problems, /--control http:\/\/control-2:8081: no service control-2 listening on 8081/);
    has(problems, /172.28.53.12 is also/);
    has(problems, /control-1: must run as a non-root user/);
    has(problems, /endpoint 172.28.53.11 is no service's address/);
    has(problems, /instance http:\/\/sim-jkt:9212: no service sim-jkt listening on 9212/);
  });
});

describe('compose, by Docker Compose itself', () => {
  // Compose v2 (`docker compose`), else v1 (`docker-compose`, which predates the top-level `name`).
  const v2 = spawnSync('docker', ['compose', 'version']).status === 0;
  const v1 = !v2 && spawnSync('docker-compose', ['version']).error === undefined;
  it.skipIf(!v1 && !v2)('accepts the file and merges it as the checks read it', () => {
    const dir = join(INFRA, 'compose');
    const tmp = mkdtempSync(join(tmpdir(), 'arus-compose-'));
    try {
      const text = readFileSync(join(dir, 'compose.yaml'), 'utf8');
      writeFileSync(join(tmp, 'compose.yaml'), v1 ? text.replace(/^name: .*$/m, '') : text);
      const args = ['-f', join(tmp, 'compose.yaml'), '--project-directory', dir, 'config'];
      const out = v2 ? execFileSync('docker', ['compose', ...args], { encoding: 'utf8' }) : execFileSync('docker-compose', args, { encoding: 'utf8' });
      const rendered = parseAllDocuments(out)[0].toJS() as Obj;
      const ours = parseYamlFile(join(dir, 'compose.yaml'))[0];
      expect(Object.keys(rendered.services).sort()).toEqual(Object.keys(ours.services).sort());
      expect(arusCommand(rendered.services.certs)).toEqual(arusCommand(ours.services.certs));
      expect(rendered.services['probe-jkt'].volumes.map((v: Obj | string) => (typeof v === 'string' ? v.split(':')[1] : v.target))).toContain('/etc/arus/tls');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('systemd units', () => {
  const units = filesUnder(join(INFRA, 'systemd'), /\.service$/);
  it('there is one for each server role', () => {
    expect(units.map((u) => u.split('/').at(-1)).sort()).toEqual(['arus-balancer@.service', 'arus-control.service', 'arus-control@.service', 'arus-dns.service', 'arus-probe@.service']);
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
      .replace('COPY --from=deps', 'COPY --from=bulid')
      .replace('COPY migrations ./migrations', 'COPY migration ./migrations')
      .replace('"--api-listen"', '"--api"');
    const problems = checkDockerfile(broken, ignore(), { cli, env });
    has(problems, /non-root USER/);
    has(problems, /no HEALTHCHECK/);
    has(problems, /--from=bulid names no earlier stage/);
    has(problems, /COPY migration: not in the repository/);
    has(problems, /no option --api/);
    has(checkDockerfile(readFileSync(file, 'utf8'), ignore().replace('!migrations/\n', ''), { cli, env }), /COPY migrations is excluded/);
    const sources = checkDockerfile(readFileSync(file, 'utf8').replace('COPY --from=build /app/dist ./dist', 'COPY src ./src'), ignore(), { cli, env });
    has(sources, /copies no dist\/ from a build stage/);
    has(sources, /the runtime stage copies src\/: it runs dist\//);
    has(checkDockerfile(readFileSync(file, 'utf8').replace('RUN npm run build', 'RUN npx tsc'), ignore(), { cli, env }), /stage build, which does not run npm run build/);
    has(checkDockerfile(readFileSync(file, 'utf8').replace('npm ci --omit=dev', 'npm ci'), ignore(), { cli, env }), /node_modules comes from stage deps, which does not run npm ci --omit=dev/);
    has(checkDockerfile(readFileSync(file, 'utf8').replace(/^[^]*?(?=FROM node:\$\{NODE_VERSION\}-bookworm-slim AS runtime)/, ''), ignore(), { cli, env }), /multi-stage/);
    // package.json's prepare (the build) would run in the production install, where tsc is missing.
    has(checkDockerfile(readFileSync(file, 'utf8').replace('npm ci --omit=dev --ignore-scripts', 'npm ci --omit=dev'), ignore(), { cli, env }), /its prepare script runs during stage deps/);
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

// ------------------------------------------------------------------- TLS

const kube = () => loadKustomization(join(INFRA, 'k8s'));
const composeDoc = () => parseYamlFile(join(INFRA, 'compose/compose.yaml'))[0];
const composeConfig = () => loadConfig([join(INFRA, 'compose/regions')]);
const unitFiles = () => filesUnder(join(INFRA, 'systemd'), /\.service$/);
const unitRuns = (patch: (name: string, text: string) => string = (_, t) => t) =>
  unitFiles().map((f) => unitRun(f.split('/').at(-1)!, patch(f.split('/').at(-1)!, readFileSync(f, 'utf8')))!);
/** The identity each run's --client-cert names, as role/binding. */
const identities = (runs: RoleRun[]) =>
  runs.flatMap((r) => {
    const p = r.provides(flagValue(r.argv, '--client-cert') ?? '');
    const id = typeof p === 'object' ? principalOf(p) : undefined;
    return id && 'principal' in id ? [[r.argv[0], [id.principal.role, id.principal.region, id.principal.agent ?? id.principal.node].filter(Boolean).join('/')]] : [];
  });

describe('TLS and identities: Kubernetes', () => {
  const workload = (objects: Obj[], name: string) => objects.find((o) => o.metadata?.name === name && o.spec?.template)!;
  const container = (objects: Obj[], name: string) => workload(objects, name).spec.template.spec.containers[0];

  it('control serves mutual TLS; every probe agent, balancer and DNS node dials https with the CA and its own certificate', () => {
    const { objects, generated } = kube();
    const runs = k8sRuns(objects, generated.Secret);
    expect(runs.map((r) => r.argv[0]).sort()).toEqual(['balancer', 'balancer', 'balancer', 'balancer', 'control', 'control', 'control', 'dns', 'dns', 'dns', 'probe', 'probe', 'probe', 'probe']);
    expect(checkTls(runs, { requireMutual: true, config: regionsFromConfigMaps(objects) })).toEqual([]);
  });

  it('cert-manager issues every certificate from a CA Issuer, one per identity, each in its role\'s layout', () => {
    const { objects, generated } = kube();
    expect(checkCertificates(objects)).toEqual([]);
    const issuer = objects.find((o) => o.kind === 'Issuer' && o.spec?.ca)!;
    expect(objects.find((o) => o.kind === 'Certificate' && o.spec.secretName === issuer.spec.ca.secretName)?.spec.isCA).toBe(true);
    expect(identities(k8sRuns(objects, generated.Secret)).sort()).toEqual([
      ['balancer', 'balancer/bkk'], ['balancer', 'balancer/jkt'], ['balancer', 'balancer/mnl'], ['balancer', 'balancer/sg'],
      ['dns', 'dns/dns-1'], ['dns', 'dns/dns-2'], ['dns', 'dns/dns-3'],
      ['probe', 'probe/bkk/bkk-1'], ['probe', 'probe/jkt/jkt-1'], ['probe', 'probe/mnl/mnl-1'], ['probe', 'probe/sg/sg-1'],
    ]);
    const viewers = objects.filter((o) => o.kind === 'Certificate').map((c) => principalOf(certInfoOf(c))).flatMap((id) => ('principal' in id && id.principal.role === 'viewer' ? [id.principal.name] : []));
    expect(viewers).toContain('prometheus');
  });

  it('a broken copy is rejected', () => {
    const objects = clone(kube().objects);
    const { generated } = kube();
    const cert = (name: string) => objects.find((o) => o.kind === 'Certificate' && o.metadata.name === name)!;
    const control = container(objects, 'arus-control');
    control.args = control.args.filter((a: string) => !a.startsWith('--tls-client-ca'));
    control.env.push({ name: 'ARUS_PROBE_TOKEN', value: 'shared' });
    const check = () => checkTls(k8sRuns(objects, generated.Secret), { requireMutual: true, config: regionsFromConfigMaps(objects) });
    let problems = check();
    has(problems, /control has no --tls-client-ca/);
    has(problems, /control has ARUS_PROBE_TOKEN in its environment, which it refuses/);

    const fresh = clone(kube().objects);
    objects.splice(0, objects.length, ...fresh);
    const c2 = container(objects, 'arus-control');
    c2.env = c2.env.filter((e: Obj) => e.name !== 'HEALTHCHECK_CERT');
    const jkt = container(objects, 'arus-probe-jkt');
    jkt.args = jkt.args.map((a: string) => a.replace('$(CONTROL_URLS)', 'http://arus-control-0:8080'));
    const sg = container(objects, 'arus-probe-sg');
    sg.args = sg.args.filter((a: string) => !a.startsWith('--ca='));
    workload(objects, 'arus-probe-mnl').spec.template.spec.volumes.find((v: Obj) => v.name === 'tls').secret.secretName = 'arus-probe-bkk-1-tls';
    workload(objects, 'arus-dns-2').spec.template.spec.volumes.find((v: Obj) => v.name === 'tls').secret.secretName = 'arus-dns-1-tls';
    workload(objects, 'arus-balancer-bkk').spec.template.spec.volumes.find((v: Obj) => v.name === 'tls').secret.secretName = 'arus-probe-bkk-1-tls';
    workload(objects, 'arus-probe-sg').spec.replicas = 2;
    const jb = container(objects, 'arus-balancer-jkt');
    jb.args = jb.args.filter((a: string) => !a.startsWith('--tls-'));
    const sgb = container(objects, 'arus-balancer-sg');
    sgb.args = sgb.args.map((a: string) => a.replace('--client-cert=/etc/arus/tls/tls.crt', '--client-cert=/etc/arus/tls/cert.pem'));
    cert('arus-balancer-mnl-serving').spec.ipAddresses = ['203.0.113.41'];
    cert('arus-control').spec.dnsNames = ['arus-control.arus.svc'];
    problems = check();
    has(problems, /arus-control container control \(pod arus-control-0\): control requires client certificates: its health check needs HEALTHCHECK_CERT/);
    has(problems, /arus-probe-jkt container probe: --control http:\/\/arus-control-0:8080 is not https:\/\//);
    has(problems, /arus-probe-sg container probe: no --ca/);
    has(problems, /arus-probe-sg container probe: 2 replicas share probe\/sg-1/);
    has(problems, /arus-probe-sg container probe: the checks are https .*, and the probe trusts no CA but the system's/);
    has(problems, /arus-probe-mnl container probe: --region mnl, but its certificate \(Certificate\/arus-probe-bkk-1\) is for region bkk/);
    has(problems, /arus-probe-mnl container probe: speaks as probe\/bkk-1, as .*arus-probe-bkk.* does/);
    has(problems, /arus-dns-2 container dns: speaks as dns\/dns-1/);
    has(problems, /arus-balancer-bkk container balancer: `arus balancer` presents Certificate\/arus-probe-bkk-1, a probe identity/);
    has(problems, /arus-balancer-jkt container balancer: --listen 0.0.0.0:8000 is off loopback without --tls-cert\/--tls-key or --insecure-plaintext/);
    has(problems, /arus-balancer-sg container balancer: --client-cert \/etc\/arus\/tls\/cert.pem is not provided/);
    has(problems, /arus-balancer-mnl container balancer: the probes check https:\/\/203.0.113.42:8000\/v1\/models, and its --tls-cert \(Certificate\/arus-balancer-mnl-serving\) does not name 203.0.113.42/);
    has(problems, /--control https:\/\/arus-control-1:8080: control's certificate \(Certificate\/arus-control\) does not name arus-control-1/);

    cert('arus-probe-jkt-1').spec.uris = ['spiffe://arus/probe/jkt-1'];
    cert('arus-dns-3').spec.issuerRef.name = 'arus-cа';
    cert('arus-balancer-sg').spec.usages = ['digital signature'];
    objects.find((o) => o.kind === 'Issuer' && o.spec?.ca)!.spec.ca.secretName = 'arus-root';
    const certs = checkCertificates(objects);
    has(certs, /Certificate\/arus-probe-jkt-1: spiffe:\/\/arus\/probe\/jkt-1: .*a probe certificate names spiffe:\/\/<trust domain>\/probe\/<region>\/<agent>/);
    has(certs, /Certificate\/arus-dns-3: issuerRef Issuer\/arus-cа is not defined here/);
    has(certs, /Certificate\/arus-balancer-sg: an identity certificate must have usages: \[client auth\]/);
    has(certs, /Issuer\/arus-ca: spec.ca.secretName arus-root is no Secret nor Certificate here/);
  });
});

describe('TLS and identities: compose, systemd, and nowhere a shared token', () => {
  it('compose: the certs service makes every file the stack names, first and once; every link is TLS with its own identity', () => {
    const doc = composeDoc();
    const prometheus = parseYamlFile(join(INFRA, 'prometheus/prometheus.yml'))[0];
    const keys = prometheus.scrape_configs.flatMap((j: Obj) => (j.tls_config?.key_file ? [j.tls_config.key_file.split('/').at(-1)] : []));
    expect(checkComposeCerts(doc, { prometheus: keys })).toEqual([]);
    const runs = composeRuns(doc);
    expect(checkTls(runs, { requireMutual: true, config: composeConfig() })).toEqual([]);
    expect(identities(runs).sort()).toEqual([
      ['balancer', 'balancer/jkt'], ['balancer', 'balancer/jkt'], ['balancer', 'balancer/sg'], ['balancer', 'balancer/sg'],
      ['dns', 'dns/dns-1'], ['dns', 'dns/dns-2'], ['probe', 'probe/jkt/jkt-1'], ['probe', 'probe/sg/sg-1'],
    ]);
  });

  it('compose: a broken copy is rejected', () => {
    const doc = clone(composeDoc());
    const certs = doc.services.certs;
    certs.command = [certs.command[0].replace('(test -f /etc/arus/tls/ca.crt ||', '(').replace(/&& chmod \S+ \S+ /, '').replace('probe/jkt/jkt-1,', '')];
    delete doc.services['control-1'].depends_on;
    doc.services['dns-2'].command = doc.services['dns-2'].command.map((a: string) => a.replace('dns-dns-2', 'dns-dns-1'));
    doc.services['balancer-sg-b'].command = doc.services['balancer-sg-b'].command.filter((a: string, i: number, all: string[]) => !/^--tls-(cert|key)$/.test(a) && !/^--tls-(cert|key)$/.test(all[i - 1] ?? ''));
    doc.services['control-1'].environment = { ...doc.services['control-1'].environment, ARUS_DNS_TOKEN: 'shared' };
    const problems = [...checkComposeCerts(doc, { prometheus: ['viewer-prometheus.key'] }), ...checkTls(composeRuns(doc), { requireMutual: true, config: composeConfig() })];
    has(problems, /runs certs init even when \/etc\/arus\/tls\/ca.crt exists/);
    has(problems, /compose service control-1: mounts certs but does not wait for certs/);
    has(problems, /compose service prometheus: reads viewer-prometheus.key as uid 65534/);
    has(problems, /compose service probe-jkt: --client-cert \/etc\/arus\/tls\/probe-jkt-jkt-1.crt is not provided/);
    has(problems, /compose service dns-2: speaks as dns\/dns-1, as compose service dns-1 does/);
    has(problems, /compose service balancer-sg-b: --listen 0.0.0.0:8000 is off loopback without --tls-cert/);
    has(problems, /compose service control-1: control has ARUS_DNS_TOKEN/);
  });

  it('systemd: control serves mutual TLS; the other units dial https with the CA and their certificates', () => {
    expect(checkTls(unitRuns(), { requireMutual: true })).toEqual([]);
    const broken = unitRuns((name, text) =>
      name === 'arus-control.service'
        ? text.replace(/ \\\n\s*--tls-client-ca \S+/, '')
        : name === 'arus-probe@.service'
          ? text.replace('CONTROL_URL=https://', 'CONTROL_URL=http://').replace(/ \\\n\s*--ca \S+/, '')
          : text,
    );
    const problems = checkTls(broken, { requireMutual: true });
    has(problems, /arus-control.service: control has no --tls-client-ca/);
    has(problems, /arus-probe@.service: --control http:\/\/control.arus.internal:8080 is not https:\/\/: `arus probe` refuses plain http off loopback/);
    has(problems, /arus-probe@.service: no --ca/);
  });

  it('no file in infra/ gives control (or anyone) ARUS_PROBE_TOKEN or ARUS_DNS_TOKEN', () => {
    const offending = (text: string) => text.split('\n').filter((l) => !/^\s*#/.test(l) && SHARED_TOKENS.some((t) => l.includes(t)));
    for (const f of filesUnder(INFRA, /./).filter((x) => !x.endsWith('README.md'))) expect(offending(readFileSync(f, 'utf8')), rel(f)).toEqual([]);
    has(offending('ARUS_PROBE_TOKEN=x\n# ARUS_DNS_TOKEN is refused'), /ARUS_PROBE_TOKEN=x/);
  });
});

// ------------------------------------------------ the replicated control plane

const etcdFlags = etcdHelpFlags();
// Without etcd here these skip, saying so in the test list; under CI they must run (.ci/deps installs etcd-server).
const withEtcd = etcdFlags !== undefined || Boolean(process.env.CI);
const kubectl = spawnSync('kubectl', ['version', '--client']).error === undefined;
/** argv with `flag`'s value replaced (`--flag=v` or `--flag v`), or the flag removed when `value` is undefined. */
const setFlag = (argv: string[], flag: string, value: string | undefined): string[] => {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(`${flag}=`)) {
      if (value !== undefined) out.push(`${flag}=${value}`);
    } else if (argv[i] === flag) {
      const bare = argv[i + 1] === undefined || argv[i + 1].startsWith('--');
      if (value !== undefined) out.push(flag, ...(bare ? [] : [value]));
      if (!bare) i++;
    } else out.push(argv[i]);
  }
  return out;
};

describe('the replicated control plane: Kubernetes', () => {
  const sts = (objects: Obj[], name: string) => objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === name)!;
  const byName = (objects: Obj[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;

  it('three etcd members over TLS as etcd\'s security guide has it; three control replicas on every member, with etcd\'s own CA; every role follows every replica; a quorum survives a drain', () => {
    const { objects, generated } = kube();
    const members = k8sEtcdRuns(objects, generated.Secret);
    expect(members.map((m) => m.flags.get('name'))).toEqual(['arus-etcd-0', 'arus-etcd-1', 'arus-etcd-2']);
    expect(checkEtcdMembers(members)).toEqual([]);
    const runs = k8sRuns(objects, generated.Secret);
    expect(checkReplicas(runs, members)).toEqual([]);
    expect(runs.filter((r) => r.argv[0] === 'control').map((r) => [flagValue(r.argv, '--replica-id'), flagValue(r.argv, '--advertise-url')])).toEqual([
      ['arus-control-0', 'https://arus-control-0:8080'], ['arus-control-1', 'https://arus-control-1:8080'], ['arus-control-2', 'https://arus-control-2:8080'],
    ]);
    expect(checkQuorumShapes(objects)).toEqual([]);
    expect(checkBudgets(objects)).toEqual([]);
  });

  it.skipIf(!withEtcd)('etcd runs only flags the real etcd has, the same as compose\'s members (which are replayed for real below)', () => {
    const members = k8sEtcdRuns(kube().objects);
    expect(checkEtcdFlags(members, etcdFlags!)).toEqual([]);
    const flags = (runs: EtcdRun[]) => [...new Set(runs.flatMap((r) => [...r.flags.keys()]))].sort();
    expect(flags(members)).toEqual(flags(composeEtcdRuns(composeDoc())));
  });

  it('a broken copy is rejected', () => {
    const objects = clone(kube().objects);
    const { generated } = kube();
    const etcd = sts(objects, 'arus-etcd');
    const member = etcd.spec.template.spec.containers[0];
    member.args = member.args.filter((a: string) => a !== '--peer-client-cert-auth').map((a: string) => a.replace(',arus-etcd-2=https://arus-etcd-2.arus-etcd:2380', ''));
    member.args.push('--peer-cert-flie=/etc/etcd/tls/tls.crt');
    member.livenessProbe = member.readinessProbe;
    etcd.spec.podManagementPolicy = 'OrderedReady';
    byName(objects, 'Service', 'arus-etcd').spec.publishNotReadyAddresses = false;
    byName(objects, 'PodDisruptionBudget', 'arus-etcd').spec.minAvailable = 3;
    objects.splice(objects.indexOf(byName(objects, 'PodDisruptionBudget', 'arus-control')), 1);
    byName(objects, 'Certificate', 'arus-etcd-member').spec.usages = ['digital signature', 'server auth'];
    byName(objects, 'Certificate', 'arus-control-etcd').spec.issuerRef.name = 'arus-ca';
    const control = sts(objects, 'arus-control').spec.template.spec.containers[0];
    control.args = setFlag(setFlag(control.args, '--etcd', 'https://arus-etcd-0.arus-etcd:2379,https://arus-etcd-1.arus-etcd:2379'), '--replica-id', 'control');
    const dns2 = byName(objects, 'Deployment', 'arus-dns-2').spec.template.spec.containers[0];
    dns2.args = setFlag(dns2.args, '--control', 'https://arus-control-0:8080,https://arus-control-1:8080');
    const members = k8sEtcdRuns(objects, generated.Secret);
    const problems = [...checkEtcdMembers(members), ...checkReplicas(k8sRuns(objects, generated.Secret), members), ...checkQuorumShapes(objects), ...(etcdFlags ? checkEtcdFlags(members, etcdFlags) : [])];
    has(problems, /\(pod arus-etcd-0\): no --peer-client-cert-auth: peers would need no certificate/);
    has(problems, /--initial-cluster has 2 member\(s\)/);
    has(problems, /\(pod arus-etcd-2\): --initial-cluster leaves out arus-etcd-2/);
    has(problems, /--peer-cert-file \(Certificate\/arus-etcd-member\) needs both the server and the client usage/);
    if (etcdFlags) has(problems, /etcd has no flag --peer-cert-flie/);
    has(problems, /StatefulSet\/arus-etcd: podManagementPolicy must be Parallel/);
    has(problems, /Service\/arus-etcd: publishNotReadyAddresses: true/);
    has(problems, /StatefulSet\/arus-etcd: the liveness probe needs a quorum/);
    has(problems, /PodDisruptionBudget\/arus-etcd: minAvailable 3 of 3 lets no pod go/);
    has(problems, /StatefulSet\/arus-control: no PodDisruptionBudget/);
    has(problems, /\(pod arus-control-0\): --etcd leaves out https:\/\/arus-etcd-2.arus-etcd:2379/);
    has(problems, /\(pod arus-control-1\): --replica-id control is also .*arus-control-0.*'s/);
    has(problems, /--etcd-cert \(Certificate\/arus-control-etcd\) is signed by arus-ca, which the members do not trust \(arus-etcd-ca\)/);
    has(problems, /arus-dns-2 container dns: --control leaves out https:\/\/arus-control-2:8080/);
    has(checkBudgets(objects), /PodDisruptionBudget\/arus-etcd: minAvailable 3 of the 3 pod\(s\) it selects lets none go/);

    // A member that is not there, and a Service that is not either.
    const far = clone(kube().objects);
    const fc = sts(far, 'arus-control').spec.template.spec.containers[0];
    fc.args = setFlag(fc.args, '--etcd', 'https://arus-etcd-0.arus-etcd:2379,https://arus-etcd-3.arus-etcd:2379,https://etcd-2:2379');
    const unresolved = checkK8s(far, { generated, cli, env });
    has(unresolved, /--etcd https:\/\/arus-etcd-3.arus-etcd:2379: no StatefulSet of Service arus-etcd has a pod arus-etcd-3/);
    has(unresolved, /--etcd https:\/\/etcd-2:2379: no Service etcd-2/);

    // etcd on the CA of the roles' identities: every probe agent's certificate would open it.
    const shared = clone(kube().objects);
    byName(shared, 'Certificate', 'arus-etcd-member').spec.issuerRef.name = 'arus-ca';
    const sharedMembers = k8sEtcdRuns(shared, generated.Secret);
    has(checkReplicas(k8sRuns(shared, generated.Secret), sharedMembers), /etcd trusts arus-ca, the CA of the roles' identities \(--tls-client-ca\)/);
  });
});

describe('the replicated control plane: compose and systemd', () => {
  const command = (doc: Obj, service: string) => doc.services[service].command as string[];

  it('compose: three etcd members over TLS, a data folder each; three control replicas on every member, with etcd\'s own CA; every role follows every replica', () => {
    const doc = composeDoc();
    const members = composeEtcdRuns(doc);
    expect(members.map((m) => m.flags.get('name'))).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
    expect(checkEtcdMembers(members)).toEqual([]);
    expect(checkReplicas(composeRuns(doc), members)).toEqual([]);
    if (etcdFlags) expect(checkEtcdFlags(members, etcdFlags)).toEqual([]);
  });

  it('compose: a broken copy is rejected', () => {
    const doc = clone(composeDoc());
    doc.services.certs.command = [doc.services.certs.command[0].replace(' --peer', '')];
    doc.services['etcd-2'].command = setFlag(command(doc, 'etcd-2'), '--data-dir', '/var/lib/etcd/etcd-1');
    doc.services['etcd-3'].command = setFlag(command(doc, 'etcd-3'), '--client-cert-auth', undefined);
    doc.services['etcd-1'].command = setFlag(command(doc, 'etcd-1'), '--trusted-ca-file', '/etc/arus/tls/ca.crt');
    doc.services['control-2'].command = setFlag(command(doc, 'control-2'), '--etcd', 'https://etcd-1:2379,https://etcd-2:2379');
    doc.services['control-3'].command = setFlag(command(doc, 'control-3'), '--replica-id', 'control-1');
    doc.services['control-1'].command = setFlag(setFlag(command(doc, 'control-1'), '--etcd-cert', '/etc/arus/tls/admin-lab.crt'), '--etcd-key', '/etc/arus/tls/admin-lab.key');
    doc.services['dns-2'].command = setFlag(command(doc, 'dns-2'), '--control', 'https://control-1:8080,https://control-2:8080');
    const members = composeEtcdRuns(doc);
    const problems = [...checkEtcdMembers(members), ...checkReplicas(composeRuns(doc), members)];
    has(problems, /compose service etcd-2: --peer-cert-file \(server.crt \(certs init --names\)\) needs both the server and the client usage/);
    has(problems, /compose service etcd-2: --data-dir \/var\/lib\/etcd\/etcd-1 \(etcd-data:etcd-1\) is also compose service etcd-1's: two members on one data directory/);
    has(problems, /compose service etcd-3: no --client-cert-auth: clients would need no certificate/);
    has(problems, /compose service etcd-1: --trusted-ca-file \/etc\/arus\/tls\/ca.crt is not provided/);
    has(problems, /compose service control-2: --etcd leaves out https:\/\/etcd-3:2379/);
    has(problems, /compose service control-3: --replica-id control-1 is also compose service control-1's/);
    has(problems, /compose service control-1: --etcd-cert \(admin-lab.crt .*\) is signed by certs init --out \/etc\/arus\/tls, which the members do not trust \(certs init --out \/etc\/arus\/etcd\)/);
    has(problems, /compose service dns-2: --control leaves out https:\/\/control-3:8080/);

    // etcd on the Arus CA: the members mount the certs volume and trust its ca.crt.
    const shared = clone(composeDoc());
    for (const m of ['etcd-1', 'etcd-2', 'etcd-3']) {
      shared.services[m].volumes = [...shared.services[m].volumes, 'certs:/etc/arus/tls:ro'];
      shared.services[m].command = setFlag(command(shared, m), '--trusted-ca-file', '/etc/arus/tls/ca.crt');
    }
    has(checkReplicas(composeRuns(shared), composeEtcdRuns(shared)), /compose service control-1: etcd trusts certs init --out \/etc\/arus\/tls, the CA of the roles' identities/);
  });

  const example = () => readFileSync(join(INFRA, 'systemd/etcd.default.example'), 'utf8');
  /** The example as on host `etcd-N`, as it says: ETCD_NAME and the host in its own URLs changed. */
  const onHost = (text: string, n: number) => text.replace(/^(ETCD_NAME|ETCD_ADVERTISE_CLIENT_URLS|ETCD_INITIAL_ADVERTISE_PEER_URLS)=(.*)$/gm, (_, k: string, v: string) => `${k}=${v.replaceAll('etcd-1', `etcd-${n}`)}`);
  const member = (text: string, source: string): EtcdRun => ({ source, flags: etcdEnvFlags(text), provides: (p) => p.startsWith('/etc/etcd/tls/') });
  const replicaUnits = (patch: (t: string) => string = (t) => t) =>
    ['control-1', 'control-2', 'control-3'].map((i) => unitRun('arus-control@.service', patch(readFileSync(join(INFRA, 'systemd/arus-control@.service'), 'utf8')), i)!);

  it('systemd: etcd.default.example sets etcd\'s own flags (as Debian\'s etcd.service reads them) with TLS for clients and peers; arus-control@ replicas on every member', () => {
    const one = member(example(), 'etcd.default.example');
    expect(checkEtcdMember(one)).toEqual([]);
    if (etcdFlags) expect(checkEtcdFlags([one], etcdFlags)).toEqual([]);
    const members = [1, 2, 3].map((n) => member(onHost(example(), n), `etcd-${n}`));
    expect(checkEtcdMembers(members)).toEqual([]);
    expect(checkReplicas(replicaUnits(), members)).toEqual([]);
    expect(replicaUnits().map((r) => flagValue(r.argv, '--replica-id'))).toEqual(['control-1', 'control-2', 'control-3']);
  });

  it('systemd: a broken copy is rejected', () => {
    const text = example().replace('ETCD_PEER_CLIENT_CERT_AUTH=true\n', '').replace('ETCD_CLIENT_CERT_AUTH=true', 'ETCD_CLIENT_CERT_AUTH=false').replace('ETCD_PEER_KEY_FILE', 'ETCD_PEER_KEY_FLIE');
    const problems = [...checkEtcdMember(member(text, 'etcd.default.example')), ...(etcdFlags ? checkEtcdFlags([member(text, 'etcd.default.example')], etcdFlags) : [])];
    has(problems, /no --client-cert-auth/);
    has(problems, /no --peer-client-cert-auth/);
    has(problems, /no --peer-key-file/);
    if (etcdFlags) has(problems, /etcd has no flag --peer-key-flie/);
    const members = [1, 2, 3].map((n) => member(onHost(example(), n), `etcd-${n}`));
    const units = replicaUnits((t) => t.replace(/ \\\n\s*--etcd-cert \S+/, '').replace('https://etcd-3.arus.internal:2379', 'https://etcd-4.arus.internal:2379'));
    const bad = checkReplicas(units, members);
    has(bad, /arus-control@.service: no --etcd-cert/);
    has(bad, /--etcd leaves out https:\/\/etcd-3.arus.internal:2379/);
    has(bad, /--etcd https:\/\/etcd-4.arus.internal:2379 is no member's --advertise-client-urls/);
  });
});

describe('the embedded shape on Kubernetes (infra/k8s-embedded)', () => {
  /** `kubectl kustomize` of the overlay, on a copy of infra/ with tokens.env filled in; `patch` edits the overlay's kustomization first. */
  const render = (patch: (k: string) => string = (k) => k): Obj[] => {
    const copy = mkdtempSync(join(tmpdir(), 'arus-k8s-embedded-'));
    try {
      for (const d of ['k8s', 'k8s-embedded']) cpSync(join(INFRA, d), join(copy, d), { recursive: true });
      copyFileSync(join(INFRA, 'k8s/tokens.env.example'), join(copy, 'k8s/tokens.env'));
      writeFileSync(join(copy, 'k8s-embedded/kustomization.yaml'), patch(readFileSync(join(copy, 'k8s-embedded/kustomization.yaml'), 'utf8')));
      const out = execFileSync('kubectl', ['kustomize', join(copy, 'k8s-embedded')], { encoding: 'utf8' });
      return parseAllDocuments(out).map((d) => d.toJS() as Obj);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  };

  it.skipIf(!kubectl)('renders one control on SQLite alone, no etcd, the roles at the arus-control Service; and passes every check of the replicated layout\'s', () => {
    const objects = render();
    expect(objects.filter((o) => o.metadata?.labels?.['app.kubernetes.io/component'] === 'etcd')).toEqual([]);
    expect(objects.filter((o) => /etcd/.test(o.metadata?.name ?? ''))).toEqual([]);
    const runs = k8sRuns(objects);
    const controls = runs.filter((r) => r.argv[0] === 'control');
    expect(controls).toHaveLength(1);
    expect(controls[0].argv.filter((a) => a.startsWith('--etcd'))).toEqual([]);
    expect(new Set(runs.filter((r) => r.argv[0] !== 'control').map((r) => flagValue(r.argv, '--control')))).toEqual(new Set(['https://arus-control:8080']));
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget').map((o) => o.metadata.name)).toEqual(['arus-dns']);
    expect(checkK8s(objects, { generated: { Secret: new Map(), ConfigMap: new Map() }, cli, env })).toEqual([]);
    expect(checkTls(runs, { requireMutual: true, config: regionsFromConfigMaps(objects) })).toEqual([]);
    expect(checkCertificates(objects)).toEqual([]);
    expect(checkBudgets(objects)).toEqual([]);
  });

  it.skipIf(!kubectl)('a broken copy is rejected: the control budget kept, the roles left on the replicas', () => {
    const objects = render((k) => k.replace(/^.*name: arus-control \}, patch.*\n/m, '').replace('  - path: single-control.yaml\n', '  - path: single-control.yaml\n  - { target: { kind: ConfigMap, name: arus-control-urls }, patch: "[{\\"op\\": \\"replace\\", \\"path\\": \\"/data/CONTROL_URLS\\", \\"value\\": \\"https://arus-control-0:8080,https://arus-control-1:8080\\"}]" }\n'));
    has(checkBudgets(objects), /PodDisruptionBudget\/arus-control: minAvailable 2 of the 1 pod\(s\) it selects lets none go/);
    has(checkK8s(objects, { generated: { Secret: new Map(), ConfigMap: new Map() }, cli, env }), /arus-probe-sg container probe: --control https:\/\/arus-control-1:8080: no Service arus-control-1/);
  });
});

describe.skipIf(!withEtcd)('the compose stack\'s etcd, control replicas and roles, replayed as real processes (no Docker)', () => {
  let replay: Replayed;
  let client: ReturnType<typeof tlsFetch>;
  const url = (service: string, port: number) => `https://127.0.0.1:${replay.portOf(service, port)}`;

  beforeAll(async () => {
    replay = await replayCompose(composeDoc(), join(INFRA, 'compose'), ['control-1', 'control-2', 'control-3', 'dns-1', 'probe-sg']);
    const tls = (f: string) => replay.hostPath('control-1', `/etc/arus/tls/${f}`);
    client = tlsFetch(tls('ca.crt'), { cert: tls('admin-lab.crt'), key: tls('admin-lab.key') });
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await replay?.stop();
  });

  it('every replica lists the three replicas at their advertised URLs, one leader, and the three members healthy (GET /v1/cluster)', async () => {
    for (const service of ['control-1', 'control-2', 'control-3']) {
      const view = await until(
        async () => (await client.fetch(`${url(service, 8080)}/v1/cluster`)).json(),
        (v) => v.replicas?.length === 3 && v.replicas.filter((r: Obj) => r.role === 'leader').length === 1 && v.members?.length === 3 && v.members.every((m: Obj) => m.healthy),
        30_000,
        250,
      );
      expect(view.mode).toBe('replicated');
      expect(view.replicas.map((r: Obj) => [r.id, r.url])).toEqual(['control-1', 'control-2', 'control-3'].map((id) => [id, url(id, 8080)]));
      expect(view.members.map((m: Obj) => m.name).sort()).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
    }
  }, 60_000);

  it('a replica\'s /metrics has the gauges the alerts and the dashboard read', async () => {
    const text = await (await client.fetch(`${url('control-2', 8080)}/metrics`)).text();
    for (const m of REPLICA_METRICS) expect(text, m).toMatch(new RegExp(`^# TYPE ${m} gauge$`, 'm'));
  });

  it('the probe agent reports to every replica; the DNS node holds a snapshot from them', async () => {
    const health = await until(
      async () => (await fetch(`http://127.0.0.1:${replay.portOf('probe-sg', 9154)}/healthz`)).json(),
      (h) => h.controls?.length === 3 && h.controls.every((c: Obj) => c.up && c.lastReportAt),
      30_000,
      250,
    );
    expect(health.controls.map((c: Obj) => c.url).sort()).toEqual(['control-1', 'control-2', 'control-3'].map((id) => url(id, 8080)).sort());
    const metrics = await until(async () => (await client.fetch(`${url('dns-1', 9153)}/metrics`)).text(), (t) => /^arus_snapshot_version [1-9]/m.test(t), 30_000, 250);
    expect(metrics).toMatch(/^arus_control_connected 1$/m);
  }, 60_000);

  it('etcd takes control\'s certificate and refuses a client without one, and one the Arus CA signed (a probe agent\'s)', async () => {
    const etcd = (f: string) => replay.hostPath('control-1', `/etc/arus/etcd/${f}`);
    const tls = (f: string) => replay.hostPath('control-1', `/etc/arus/tls/${f}`);
    expect((await replay.ctl(['get', '--prefix', '--keys-only', '/'], { cert: etcd('admin-control.crt'), key: etcd('admin-control.key') })).code).toBe(0);
    expect((await replay.ctl(['get', 'x'])).code).not.toBe(0);
    expect((await replay.ctl(['get', 'x'], { cert: tls('probe-sg-sg-1.crt'), key: tls('probe-sg-sg-1.key') })).code).not.toBe(0);
  }, 60_000);
});

describe('Prometheus scrapes over TLS', () => {
  const dir = join(INFRA, 'prometheus');
  const k8sServing = () => {
    const { objects, generated } = kube();
    const byJob = new Map<string, CertInfo[]>();
    for (const r of k8sRuns(objects, generated.Secret)) {
      const served = r.provides(flagValue(r.argv, '--tls-cert') ?? '');
      if (typeof served === 'object') byJob.set(`arus-${r.argv[0]}`, [...(byJob.get(`arus-${r.argv[0]}`) ?? []), served]);
    }
    return byJob;
  };
  it('compose and systemd: https with the CA; control with a viewer certificate the certs service makes', () => {
    const compose = composeDoc();
    const o = { needsClientCert: ['arus-control'], provides: composeProvides(compose, compose.services.prometheus) };
    expect(checkScrapeTls(parseYamlFile(join(dir, 'prometheus.yml'))[0], 'prometheus.yml', o)).toEqual([]);
    // The targets are scraped by name: each is in the certificate it serves.
    const server = certsInitFiles(arusCommand(compose.services.certs)!).get('server.crt') as CertInfo;
    for (const f of filesUnder(join(dir, 'targets'), /\.yml$/)) for (const t of parseYamlFile(f).flat().flatMap((g: Obj) => g.targets)) expect(covers(server, t.split(':')[0]), t).toBe(true);
  });
  it('Kubernetes: https, each job verifying the name its pods\' certificates carry', () => {
    expect(checkScrapeTls(parseYamlFile(join(dir, 'kubernetes-scrape.yml'))[0], 'kubernetes-scrape.yml', { needsClientCert: ['arus-control'], serverNames: k8sServing() })).toEqual([]);
  });
  it('a broken copy is rejected', () => {
    const compose = composeDoc();
    const prom = clone(parseYamlFile(join(dir, 'prometheus.yml'))[0]);
    const job = (name: string) => prom.scrape_configs.find((j: Obj) => j.job_name === name);
    job('arus-dns').scheme = 'http';
    delete job('arus-balancer').tls_config.ca_file;
    job('arus-control').tls_config.cert_file = '/etc/arus/tls/probe-sg-sg-1.crt';
    delete job('arus-control').tls_config.key_file;
    let problems = checkScrapeTls(prom, 'prometheus.yml', { needsClientCert: ['arus-control'], provides: composeProvides(compose, compose.services.prometheus) });
    has(problems, /job arus-dns: scheme must be https/);
    has(problems, /job arus-balancer: tls_config.ca_file is missing/);
    has(problems, /job arus-control: control requires client certificates: tls_config needs cert_file and key_file/);
    has(problems, /job arus-control: cert_file \/etc\/arus\/tls\/probe-sg-sg-1.crt is a probe identity/);
    const k8s = clone(parseYamlFile(join(dir, 'kubernetes-scrape.yml'))[0]);
    k8s.scrape_configs.find((j: Obj) => j.job_name === 'arus-dns').tls_config.server_name = 'arus-dns';
    delete k8s.scrape_configs.find((j: Obj) => j.job_name === 'arus-balancer').tls_config.server_name;
    problems = checkScrapeTls(k8s, 'kubernetes-scrape.yml', { needsClientCert: ['arus-control'], serverNames: k8sServing() });
    has(problems, /job arus-dns: server_name arus-dns is not in Certificate\/arus-dns-1/);
    has(problems, /job arus-balancer: targets are scraped by address/);
  });
  it.skipIf(spawnSync('promtool', ['--version']).error !== undefined)('promtool accepts the Kubernetes jobs (their service discovery swapped for static targets where promtool lacks it)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'arus-prom-'));
    try {
      const k8s = parseYamlFile(join(dir, 'kubernetes-scrape.yml'))[0];
      for (const j of k8s.scrape_configs) {
        delete j.kubernetes_sd_configs;
        j.static_configs = [{ targets: ['127.0.0.1:1'] }];
      }
      writeFileSync(join(tmp, 'k8s.yml'), JSON.stringify(k8s));
      execFileSync('promtool', ['check', 'config', '--syntax-only', join(tmp, 'k8s.yml')]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('arus certs init, checked by openssl', () => {
  let dir: string;
  let etcdDir: string;
  let runs: string[][];
  const openssl = (...args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
  /** The certificate's SAN as openssl prints it, in node's `subjectaltname` form. */
  const san = (file: string) => openssl('x509', '-in', file, '-noout', '-ext', 'subjectAltName').stdout.split('\n').slice(1).join(' ').trim();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'arus-certs-'));
    etcdDir = mkdtempSync(join(tmpdir(), 'arus-certs-etcd-'));
    // Exactly what the compose stack's certs service runs (the Arus CA's set, then etcd's), into folders of our own.
    runs = composeCertsRuns(composeDoc()).map((r, n) => r.argv.map((a, i, all) => (all[i - 1] === '--out' ? [dir, etcdDir][n] : a)));
    expect(runs).toHaveLength(2);
    for (const argv of runs) {
      const r = arus(argv);
      expect(r.code, r.stderr).toBe(0);
    }
  }, 60_000);
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(etcdDir, { recursive: true, force: true });
  });

  it.skipIf(spawnSync('openssl', ['version']).error !== undefined)('writes the files the setups name, each verifying against its ca.crt for its purpose, with the names and identity the checks assume', () => {
    for (const [n, argv] of runs.entries()) {
      const out = [dir, etcdDir][n];
      const expected = certsInitFiles(argv);
      expect(readdirSync(out).sort()).toEqual([...expected.keys()].sort());
      for (const [file, info] of expected) {
        if (typeof info !== 'object') continue;
        const path = join(out, file);
        for (const purpose of ['sslserver', 'sslclient']) {
          const meant = info.usages.includes(purpose === 'sslserver' ? 'server auth' : 'client auth');
          const r = openssl('verify', '-CAfile', join(out, 'ca.crt'), '-purpose', purpose, path);
          if (meant) expect(`${r.stdout}${r.stderr}`.trim(), `${file} for ${purpose}`).toBe(`${path}: OK`);
          else expect(r.status, `${file} must not pass for ${purpose}`).not.toBe(0);
        }
        const names = san(path).split(/,\s*/).sort();
        expect(names, file).toEqual([...info.dnsNames.map((x) => `DNS:${x}`), ...info.ips.map((x) => `IP Address:${x}`), ...info.uris.map((u) => `URI:${u}`)].sort());
        if (info.uris.length) {
          const id = identityOf({ subjectaltname: san(path), subject: {} });
          expect(id && 'principal' in id ? id.principal.role : id, file).toBe(file.split('-')[0]);
        }
      }
    }
    const probe = identityOf({ subjectaltname: san(join(dir, 'probe-jkt-jkt-1.crt')), subject: {} });
    expect(probe).toEqual({ principal: { role: 'probe', name: 'jkt-1', agent: 'jkt-1', region: 'jkt', via: 'certificate' } });
    // The members' certificate (--peer) serves and dials: both purposes, as etcd 3.4's peer links need.
    expect((certsInitFiles(runs[1]).get('server.crt') as CertInfo).usages).toEqual(['server auth', 'client auth']);
    // Two CAs: nothing the Arus CA signed passes for etcd's.
    expect(openssl('verify', '-CAfile', join(etcdDir, 'ca.crt'), join(dir, 'probe-jkt-jkt-1.crt')).status).not.toBe(0);
  });

  it('writes every key readable by its owner alone (compose opens Prometheus\' to its group itself)', () => {
    for (const out of [dir, etcdDir]) for (const f of readdirSync(out).filter((x) => x.endsWith('.key'))) expect((statSync(join(out, f)).mode & 0o777).toString(8), f).toBe('600');
  });

  it('the container health check verifies https, and presents a client certificate to a mutual-TLS listener', async () => {
    const other = mkdtempSync(join(tmpdir(), 'arus-certs-other-'));
    const server = createHttpsServer(
      { cert: readFileSync(join(dir, 'server.crt')), key: readFileSync(join(dir, 'server.key')), ca: readFileSync(join(dir, 'ca.crt')), requestCert: true, rejectUnauthorized: true },
      (_req, res) => res.writeHead(200).end('{"ok":true}'),
    );
    try {
      expect(arus(['certs', 'init', '--out', other, '--names', '127.0.0.1']).code).toBe(0);
      const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
      const url = `https://127.0.0.1:${port}/healthz`;
      const tls = { HEALTHCHECK_CA: join(dir, 'ca.crt'), HEALTHCHECK_CERT: join(dir, 'viewer-healthcheck.crt'), HEALTHCHECK_KEY: join(dir, 'viewer-healthcheck.key') };
      expect(await healthcheck({ HEALTHCHECK_URL: url, ...tls })).toEqual({ code: 0, stderr: '' });
      const noCert = await healthcheck({ HEALTHCHECK_URL: url, HEALTHCHECK_CA: tls.HEALTHCHECK_CA });
      expect(noCert.code).toBe(1);
      expect(noCert.stderr).toMatch(/unhealthy: https:\/\/127.0.0.1:\d+\/healthz: /);
      const wrongCa = await healthcheck({ HEALTHCHECK_URL: url, ...tls, HEALTHCHECK_CA: join(other, 'ca.crt') });
      expect(wrongCa).toEqual({ code: 1, stderr: expect.stringMatching(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i) });
      expect((await healthcheck({ HEALTHCHECK_URL: url.replace('127.0.0.1', 'localhost'), ...tls })).code).toBe(0);
    } finally {
      server.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});

/** Runs the image's health check with these variables: its exit code and what it said. */
function healthcheck(vars: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(INFRA, 'docker/healthcheck.mjs')], { env: { PATH: process.env.PATH, HEALTHCHECK_TIMEOUT_MS: '3000', ...vars } }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: stderr.trim() }),
    ),
  );
}

describe('the image runs compiled JavaScript', () => {
  let stages: Map<string, string>;
  let tmp: string;
  const clean = { PATH: process.env.PATH, HOME: process.env.HOME };

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'arus-image-'));
    // tsx is left out of the runtime's node_modules: the image must not need it.
    stages = await replayDockerfile(readFileSync(join(INFRA, 'docker/Dockerfile'), 'utf8'), readFileSync(join(INFRA, 'docker/Dockerfile.dockerignore'), 'utf8'), tmp, { without: ['tsx'] });
  }, 120_000);
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('the build stage compiles what the build context lets in', () => {
    const build = stages.get('build')!;
    for (const f of ['dist/cli.js', 'dist/.built', 'dist/status/assets', 'dist/db/database.js']) expect(existsSync(join(build, f)), f).toBe(true);
    expect(existsSync(join(build, 'src/cli.ts'))).toBe(true);
    expect(filesUnder(join(build, 'src'), /\.test\.ts$/)).toEqual([]);
  });

  it('the runtime has dist/, no src/, and production packages without tsx', () => {
    const runtime = stages.get('runtime')!;
    expect(existsSync(join(runtime, 'dist/cli.js'))).toBe(true);
    expect(existsSync(join(runtime, 'src'))).toBe(false);
    expect(existsSync(join(runtime, 'node_modules/tsx'))).toBe(false);
    expect(existsSync(join(runtime, 'node_modules/better-sqlite3'))).toBe(true);
    expect(existsSync(join(runtime, 'node_modules/vitest'))).toBe(false);
    expect(existsSync(join(runtime, 'infra/docker/healthcheck.mjs'))).toBe(true);
  });

  it('there, arus makes certificates, tokens and decisions, and control and a DNS node start and answer', async () => {
    const runtime = stages.get('runtime')!;
    const bin = join(runtime, 'bin/arus.js');
    const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: runtime, env: clean, encoding: 'utf8', timeout: 30_000 });
    const db = join(tmp, 'image.db');
    const certs = run(['certs', 'init', '--out', join(tmp, 'tls'), '--names', 'localhost', '--clients', 'probe/jkt/jkt-1']);
    expect(certs.status, certs.stderr).toBe(0);
    expect(certs.stderr).toBe('');
    const port = await freePort();
    const control = spawn(process.execPath, [bin, 'control', '--db', db, '--api-listen', `127.0.0.1:${port}`, '--tls-cert', join(tmp, 'tls/server.crt'), '--tls-key', join(tmp, 'tls/server.key')], { cwd: runtime, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    control.stderr.on('data', (d) => (stderr += d));
    try {
      await readyLine(control, [], 30_000, () => `control in the image layout\n${stderr}`);
      const health = await healthcheck({ HEALTHCHECK_URL: `https://localhost:${port}/healthz`, HEALTHCHECK_CA: join(tmp, 'tls/ca.crt') });
      expect(health).toEqual({ code: 0, stderr: '' });
    } finally {
      await stopProcess(control);
    }
    expect(stderr).not.toMatch(/tsx|ERR_MODULE_NOT_FOUND/);
    const token = run(['token', 'create', '--role', 'probe', '--agent', 'jkt-1', '--region', 'jkt', '--db', db]);
    expect(token.status, token.stderr).toBe(0);
    const resolved = run(['resolve', 'api.gslb.example.com', '--client', '192.0.2.1', '--ecs', '36.66.0.0/24', '--db', db]);
    expect(resolved.status, resolved.stderr).toBe(0);
    expect(resolved.stdout).toMatch(/region jkt/);
    const [dnsPort, metricsPort] = [await freePort(), await freePort()];
    const dns = spawn(process.execPath, [bin, 'dns', '--db', db, '--dns-listen', `127.0.0.1:${dnsPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`], { cwd: runtime, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await readyLine(dns, [], 30_000, () => 'dns in the image layout');
      expect(await healthcheck({ HEALTHCHECK_URL: `dns+tcp://127.0.0.1:${dnsPort}` })).toEqual({ code: 0, stderr: '' });
    } finally {
      await stopProcess(dns);
    }
  });
});

describe('autoscaling (infra/autoscaling)', () => {
  it("KEDA's ScaledObject and the HPA ask for the replicas of the balancer's desired-instances gauge, as exported", () => {
    const [scaled] = parseYamlFile(join(INFRA, 'autoscaling/keda-scaledobject.yaml'));
    expect(scaled).toMatchObject({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', spec: { scaleTargetRef: { kind: 'Deployment' } } });
    const trigger = scaled.spec.triggers[0];
    expect(trigger).toMatchObject({ type: 'prometheus', metadata: { metricType: 'Value', threshold: '1' } });
    // The query names a series the balancer registers, with labels it has, from a job Prometheus scrapes (the
    // catalog's balancer is region sg serving model m: the values are checked against infra/k8s just below).
    const asCatalog = (q: string) => q.replace('region="jkt"', 'region="sg"').replace('model="llama-3-8b"', 'model="m"');
    expect(checkPromql(asCatalog(trigger.metadata.query), catalog, 'keda-scaledobject.yaml', jobs)).toEqual([]);
    const regions = parseYamlFile(join(INFRA, 'k8s/regions-configmap.yaml'))[0].data as Record<string, string>;
    expect(parseAllDocuments(regions['jkt.yaml'])[0].toJS()).toMatchObject({ id: 'jkt', balancer: { instances: expect.arrayContaining([expect.objectContaining({ models: ['llama-3-8b'] })]) as unknown } });
    expect(metricNamesIn(trigger.metadata.query)).toEqual(['arus_balancer_pool_desired_instances']);
    const [hpa] = parseYamlFile(join(INFRA, 'autoscaling/hpa-external.yaml'));
    expect(hpa).toMatchObject({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', spec: { metrics: [{ type: 'External', external: { target: { type: 'Value', value: '1' } } }] } });
    expect(hpa.spec.scaleTargetRef).toEqual(scaled.spec.scaleTargetRef);
    const adapterRule = /seriesQuery: '([^']+)'/.exec(readFileSync(join(INFRA, 'autoscaling/hpa-external.yaml'), 'utf8'))![1];
    expect(checkPromql(asCatalog(adapterRule), catalog, 'hpa-external.yaml', jobs)).toEqual([]);
    expect(metricNamesIn(adapterRule)).toEqual(['arus_balancer_pool_desired_instances']);
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
