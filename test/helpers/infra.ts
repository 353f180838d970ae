// Checkers for the deployment files in infra/: each takes parsed files and
// returns a list of problems (empty when all is well), so a test can assert
// both that the real files pass and that a broken copy is caught.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { startBalancer } from '../../src/balancer/role.js';
import { loadConfig } from '../../src/config/load.js';
import { balancerSchema, type Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { observeControlSource } from '../../src/snapshot/metrics.js';
import { ROOT } from './arus.js';

export { ROOT };
export const INFRA = join(ROOT, 'infra');

// Parsed YAML and JSON are walked freely here: the checks are what validate them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

const run = promisify(execFile);

/** Every YAML document in a file (merge keys `<<:` on, as Compose reads them); parse errors throw. */
export function parseYamlFile(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
  return list.map((d) => d.toJS() as Obj).filter((d) => d != null);
}

export function filesUnder(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile() && pattern.test(f))
    .sort();
}

// ---------------------------------------------------------------- the real CLI

export type Cli = { commands: Map<string, string> };

/**
 * The command list and each command's --help text, from the real `arus`: one
 * Node process (tsx loads once) imports cli.ts afresh for each `--help`.
 */
export async function loadCli(): Promise<Cli> {
  const script = `
    import { register } from 'tsx/esm/api';
    register();
    const cli = ${JSON.stringify(pathToFileURL(join(ROOT, 'src/cli.ts')).href)};
    const log = console.log;
    const help = async (args) => {
      let text = '';
      console.log = (...a) => (text += a.join(' ') + '\\n');
      process.argv = [process.argv[0], 'arus', ...args];
      try { await import(cli + '?help=' + args.join('-')); } finally { console.log = log; }
      return text;
    };
    const out = { '': await help(['--help']) };
    for (const m of out[''].matchAll(/^ {2}([a-z][a-z-]*) {2,}\\S/gm)) out[m[1]] = await help([m[1], '--help']);
    process.stdout.write(JSON.stringify(out));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, maxBuffer: 1 << 24 });
  const helps = JSON.parse(stdout) as Record<string, string>;
  return { commands: new Map(Object.entries(helps).filter(([name]) => name !== '')) };
}

/** A command line that runs `arus`: argv after the program (`dns --db x …`). */
export type Invocation = { source: string; argv: string[] };

/**
 * Flags the manifests use that another change is adding to the CLI at the same
 * time (`arus dns --control URL --snapshot FILE`). Allowed while absent from
 * the help text; once they appear they are checked like any other.
 */
export const PENDING_FLAGS: Record<string, string[]> = {};

const LISTEN_FLAGS = new Set(['--dns-listen', '--api-listen', '--metrics-listen', '--listen', '--health-listen']);
const LISTEN_ITEM = /^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/;

export function checkInvocation(inv: Invocation, cli: Cli, pending = PENDING_FLAGS): string[] {
  const [cmd, ...rest] = inv.argv;
  const help = cli.commands.get(cmd);
  if (!help) return [`${inv.source}: \`arus ${cmd}\` is not an arus command (${[...cli.commands.keys()].join(', ')})`];
  const problems: string[] = [];
  rest.forEach((arg, i) => {
    if (!arg.startsWith('--')) return;
    const [flag, inline] = arg.split('=', 2);
    const known = new RegExp(`(^|[\\s\\[(])${flag}(?![\\w-])`, 'm').test(help);
    if (!known && !pending[cmd]?.includes(flag)) problems.push(`${inv.source}: \`arus ${cmd}\` has no option ${flag}`);
    const value = inline ?? rest[i + 1];
    if (LISTEN_FLAGS.has(flag) && !/^\$/.test(value ?? ''))
      for (const item of (value ?? '').split(','))
        if (!LISTEN_ITEM.test(item.trim())) problems.push(`${inv.source}: ${flag} ${value}: "${item}" is not HOST:PORT`);
  });
  return problems;
}

/** The value of `--flag` in argv (`--flag v` or `--flag=v`). */
export function flagValue(argv: string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === flag) return argv[i + 1];
    if (argv[i].startsWith(`${flag}=`)) return argv[i].slice(flag.length + 1);
  }
  return undefined;
}

/** The URLs of a `--control` (or `--etcd`) value: one, or several comma-separated; throws on one that does not parse. */
export function urlList(value: string): URL[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => new URL(s));
}

/** `$(VAR)` references (Kubernetes' expansion in command and args) replaced from `env`; unknown ones kept as they are. */
export function expandVars(argv: string[], env: Record<string, string | undefined>): string[] {
  return argv.map((a) => a.replace(/\$\((\w+)\)/g, (all, v: string) => env[v] ?? all));
}

/** Lowest port a process binds, from its listen flags (53 for a production DNS node). */
export function lowestListenPort(argv: string[]): number | undefined {
  const ports = [...LISTEN_FLAGS].flatMap((f) => (flagValue(argv, f) ?? '').split(',').map((s) => Number(LISTEN_ITEM.exec(s.trim())?.[1])).filter((n) => n > 0));
  return ports.length ? Math.min(...ports) : undefined;
}

/** `ARUS_*` variables the code reads (every non-test source file), and the `HEALTHCHECK_*` ones the image's health check reads. */
export function arusEnvNames(): Set<string> {
  const names = new Set<string>();
  for (const f of filesUnder(join(ROOT, 'src'), /\.ts$/).filter((f) => !/\.(test|case)\.ts$/.test(f)))
    for (const m of readFileSync(f, 'utf8').matchAll(/\bARUS_[A-Z0-9_]+\b/g)) names.add(m[0]);
  for (const m of readFileSync(join(INFRA, 'docker/healthcheck.mjs'), 'utf8').matchAll(/\bHEALTHCHECK_[A-Z0-9_]+\b/g)) names.add(m[0]);
  return names;
}

export function checkEnvNames(names: string[], source: string, known: Set<string>): string[] {
  return names
    .filter((n) => /^(ARUS|HEALTHCHECK)_/.test(n) && !known.has(n))
    .map((n) => `${source}: environment variable ${n} is read by nothing (src/, infra/docker/healthcheck.mjs)`);
}

// ------------------------------------------------------------------- metrics

export type Catalog = {
  /** Every series name a scrape can return (histograms with _bucket, _sum, _count). */
  names: Set<string>;
  /** Label names per series name. */
  labels: Map<string, Set<string>>;
  /** Label values the registry lists before any traffic (rcodes, instance states …), per series and label. */
  values: Map<string, Map<string, Set<string>>>;
  /** Values of `kind` on arus_events_total: event kinds written in src/. */
  eventKinds: Set<string>;
};

/** Series Prometheus itself adds to every target, and labels it adds to every series. */
const PROMETHEUS_SERIES = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added', 'ALERTS', 'ALERTS_FOR_STATE'];
const TARGET_LABELS = ['job', 'instance', '__name__'];

/**
 * The metrics Arus registers, read from the real registries: control's and the
 * DNS node's (`createMetrics`, the one every role uses) and a real balancer's
 * `/metrics`, started on loopback; plus `extraFamilies`.
 */
export async function loadCatalog(extraTargetLabels: string[] = [], extraFamilies: [name: string, type: string, labels: string[]][] = []): Promise<Catalog> {
  const cat: Catalog = { names: new Set(), labels: new Map(), values: new Map(), eventKinds: eventKindsInSource() };
  const add = (name: string, labels: Iterable<string>) => {
    cat.names.add(name);
    const set = cat.labels.get(name) ?? new Set([...TARGET_LABELS, ...extraTargetLabels]);
    for (const l of labels) set.add(l);
    cat.labels.set(name, set);
  };
  const addFamily = (name: string, type: string, labels: string[]) => {
    if (type === 'histogram') {
      add(`${name}_bucket`, [...labels, 'le']);
      add(`${name}_sum`, labels);
      add(`${name}_count`, labels);
    } else if (type === 'summary') {
      add(name, [...labels, 'quantile']);
      add(`${name}_sum`, labels);
      add(`${name}_count`, labels);
    } else add(name, labels);
  };
  // A DNS node's registry: the shared metrics plus those of its snapshot stream from control.
  const metrics = createMetrics();
  observeControlSource(metrics.registry, { stats: () => ({ connected: false, applied: { disk: 0, control: 0 }, rejected: { disk: 0, control: 0 } }) });
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const labels = new Set<string>((metrics.registry.getSingleMetric(m.name) as { labelNames?: string[] } | undefined)?.labelNames ?? []);
    for (const v of m.values) for (const [k, val] of Object.entries(v.labels)) {
      if (k === 'le' || k === 'quantile') continue;
      labels.add(k);
      const byLabel = cat.values.get(m.name) ?? new Map<string, Set<string>>();
      byLabel.set(k, (byLabel.get(k) ?? new Set()).add(String(val)));
      cat.values.set(m.name, byLabel);
    }
    addFamily(m.name, String(m.type), [...labels]);
  }
  for (const [name, type, labels, values] of await balancerExposition()) {
    addFamily(name, type, labels);
    if (values.size) cat.values.set(name, values);
  }
  // Families only some processes register (a replica of the replicated control plane), checked against a real one elsewhere.
  for (const [name, type, labels] of extraFamilies) addFamily(name, type, labels);
  for (const s of PROMETHEUS_SERIES) add(s, s.startsWith('ALERTS') ? ['alertname', 'alertstate', 'severity'] : []);
  return cat;
}

/** Families of a real balancer's `/metrics`: name, type, label names, values seen per label. */
async function balancerExposition(): Promise<[string, string, string[], Map<string, Set<string>>][]> {
  const doc = balancerSchema.parse({ instances: [{ id: 'gpu-1', url: 'http://127.0.0.1:9', models: ['m'] }] });
  const log = silentLogger();
  const b = await startBalancer({ region: 'sg', id: 'catalog', doc, log, listen: { address: '127.0.0.1', port: 0 } });
  try {
    const text = await (await fetch(`http://127.0.0.1:${b.port}/metrics`)).text();
    const families = new Map<string, [string, Set<string>, Map<string, Set<string>>]>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(m[1], [m[2], new Set(), new Map()]);
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*?)(_bucket|_sum|_count)?\{([^}]*)\}/.exec(line);
      const fam = m && (families.get(m[1] + (m[2] ?? '')) ?? families.get(m[1]));
      if (!fam) continue;
      for (const l of m[3].matchAll(/(\w+)="([^"]*)"/g)) {
        if (l[1] === 'le') continue;
        fam[1].add(l[1]);
        fam[2].set(l[1], (fam[2].get(l[1]) ?? new Set()).add(l[2]));
      }
    }
    // Label names of series not yet observed (the latency histogram before any request).
    const declared: Record<string, string[]> = { arus_balancer_request_seconds: ['instance', 'pool', 'outcome', 'region'] };
    return [...families].map(([name, [type, labels, values]]) => [name, type, [...new Set([...labels, ...(declared[name] ?? [])])], values]);
  } finally {
    await b.stop();
  }
}

/** Event kinds the code writes: quoted `a.b` or single-word kinds on lines that mention `kind`. */
export function eventKindsInSource(): Set<string> {
  const kinds = new Set<string>();
  for (const f of filesUnder(join(ROOT, 'src'), /\.ts$/).filter((f) => !/\.(test|case)\.ts$/.test(f)))
    for (const line of readFileSync(f, 'utf8').split('\n'))
      if (/\bkind\b/.test(line)) for (const m of line.matchAll(/'([a-z-]+(?:\.[a-z-]+)?)'/g)) kinds.add(m[1]);
  return kinds;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan', 'atan2']);

/** Strings, label matchers, ranges, grouping clauses and Grafana variables out: what is left names series. */
function promqlSkeleton(expr: string): string {
  return expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
}

/** Series names an expression reads. */
export function metricNamesIn(expr: string): string[] {
  const s = promqlSkeleton(expr);
  const names: string[] = [];
  for (const m of s.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*/g)) {
    if (PROMQL_WORDS.has(m[0])) continue;
    if (s.slice(m.index + m[0].length).trimStart().startsWith('(')) continue; // a function or an aggregation
    names.push(m[0]);
  }
  return names;
}

/** Checks a PromQL expression against the catalog: series, label names, known label values, job names, brackets. */
export function checkPromql(expr: string, cat: Catalog, source: string, jobs?: Set<string>): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('([{'.includes(ch)) stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) {
      problems.push(`${source}: unbalanced "${ch}" in ${expr}`);
      break;
    }
  }
  if (stack.length) problems.push(`${source}: unclosed "${stack.at(-1)}" in ${expr}`);
  const names = metricNamesIn(expr);
  if (!names.length) problems.push(`${source}: reads no metric: ${expr}`);
  for (const n of names) if (!cat.names.has(n)) problems.push(`${source}: metric ${n} is not registered by Arus (nor added by Prometheus)`);
  // Matchers of each selector: metric{label op "value", …}
  for (const sel of expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const [, name, body] = sel;
    const labels = cat.labels.get(name);
    if (!labels) continue;
    for (const m of body.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      const [, label, op, value] = m;
      if (!labels.has(label)) problems.push(`${source}: ${name} has no label ${label}`);
      if (op === '!=' || op === '!~' || value.includes('$')) continue;
      const known = label === 'job' ? jobs : name === 'arus_events_total' && label === 'kind' ? cat.eventKinds : cat.values.get(name)?.get(label);
      if (!known?.size) continue;
      const alternatives = op === '=' ? [value] : value.split('|');
      for (const alt of alternatives) {
        const re = op === '=' ? undefined : new RegExp(`^(?:${alt})$`);
        if (![...known].some((k) => (re ? re.test(k) : k === alt))) problems.push(`${source}: ${name}{${label}${op}"${value}"}: "${alt}" matches no known ${label} (${[...known].join(', ')})`);
      }
    }
  }
  return problems;
}

// ----------------------------------------------------------------- Prometheus

/** Job names and target labels a Prometheus scrape configuration defines. */
export function scrapeJobs(config: Obj): { jobs: Set<string>; targetLabels: Set<string> } {
  const jobs = new Set<string>();
  const targetLabels = new Set<string>();
  for (const j of config.scrape_configs ?? []) {
    jobs.add(j.job_name);
    for (const r of j.relabel_configs ?? []) if (r.target_label && !r.target_label.startsWith('__')) targetLabels.add(r.target_label);
    for (const s of j.static_configs ?? []) for (const l of Object.keys(s.labels ?? {})) targetLabels.add(l);
  }
  return { jobs, targetLabels };
}

export function checkScrapeConfig(config: Obj, dir: string, source: string): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const f of config.rule_files ?? []) if (!existsSync(join(dir, f))) problems.push(`${source}: rule file ${f} does not exist`);
  if (!Array.isArray(config.scrape_configs) || !config.scrape_configs.length) problems.push(`${source}: no scrape_configs`);
  for (const j of config.scrape_configs ?? []) {
    if (!/^[\w-]+$/.test(j.job_name ?? '')) problems.push(`${source}: a scrape job has no job_name`);
    if (seen.has(j.job_name)) problems.push(`${source}: job ${j.job_name} defined twice`);
    seen.add(j.job_name);
    if (!j.file_sd_configs && !j.static_configs && !j.kubernetes_sd_configs) problems.push(`${source}: job ${j.job_name} has no targets`);
    for (const sd of j.file_sd_configs ?? [])
      for (const f of sd.files ?? []) {
        if (!existsSync(join(dir, f))) problems.push(`${source}: job ${j.job_name}: target file ${f} does not exist`);
        else
          for (const group of parseYamlFile(join(dir, f)).flat())
            for (const t of group.targets ?? []) if (!/^[\w.-]+:\d+$/.test(t)) problems.push(`${f}: target ${t} is not HOST:PORT`);
      }
  }
  return problems;
}

const REQUIRED_ALERTS = ['ArusRegionDown', 'ArusFleetBlind', 'ArusFailoverStorm', 'ArusControlDown', 'ArusControlNoLeader', 'ArusEtcdNoQuorum'];

export function checkAlertRules(doc: Obj, cat: Catalog, jobs: Set<string>, source: string): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  if (!Array.isArray(doc.groups)) return [`${source}: no groups`];
  for (const g of doc.groups) {
    if (!g.name) problems.push(`${source}: a group has no name`);
    for (const r of g.rules ?? []) {
      const where = `${source}: ${r.alert ?? r.record ?? '?'}`;
      if (!r.alert && !r.record) problems.push(`${where}: neither alert nor record`);
      if (r.alert) {
        if (names.has(r.alert)) problems.push(`${where}: defined twice`);
        names.add(r.alert);
        if (!['critical', 'warning', 'info'].includes(r.labels?.severity)) problems.push(`${where}: labels.severity must be critical, warning or info`);
        if (!r.annotations?.summary) problems.push(`${where}: no annotations.summary`);
      }
      if (r.for !== undefined && !/^(\d+(ms|s|m|h|d|w|y))+$/.test(String(r.for))) problems.push(`${where}: for: ${r.for} is not a duration`);
      if (typeof r.expr !== 'string' || !r.expr.trim()) problems.push(`${where}: no expr`);
      else problems.push(...checkPromql(r.expr, cat, where, jobs));
      for (const t of Object.values<string>({ ...r.annotations, ...r.labels }))
        if ((t.match(/\{\{/g) ?? []).length !== (t.match(/\}\}/g) ?? []).length) problems.push(`${where}: unbalanced template braces in "${t}"`);
    }
  }
  for (const a of REQUIRED_ALERTS) if (!names.has(a)) problems.push(`${source}: the alert ${a} is missing`);
  return problems;
}

// -------------------------------------------------------------------- Grafana

export function checkDashboard(dash: Obj, cat: Catalog, jobs: Set<string>, source: string): string[] {
  const problems: string[] = [];
  if (!dash.uid || !dash.title) problems.push(`${source}: uid and title are required`);
  const vars = new Set<string>((dash.templating?.list ?? []).map((v: Obj) => v.name));
  const ids = new Set<number>();
  const panels: Obj[] = (dash.panels ?? []).flatMap((p: Obj) => [p, ...(p.panels ?? [])]);
  if (!panels.some((p) => p.targets?.length)) problems.push(`${source}: no panel queries anything`);
  const checkDs = (ds: Obj | string | undefined, where: string) => {
    const uid = typeof ds === 'string' ? ds : ds?.uid;
    const ref = /^\$\{?(\w+)\}?$/.exec(uid ?? '');
    if (ref && !vars.has(ref[1])) problems.push(`${where}: datasource variable ${ref[1]} is not defined in templating`);
  };
  for (const p of panels) {
    const where = `${source}: panel ${p.id} "${p.title}"`;
    if (typeof p.id !== 'number' || ids.has(p.id)) problems.push(`${where}: ids must be unique numbers`);
    ids.add(p.id);
    if (!p.gridPos || ['h', 'w', 'x', 'y'].some((k) => typeof p.gridPos[k] !== 'number')) problems.push(`${where}: no gridPos`);
    checkDs(p.datasource, where);
    for (const t of p.targets ?? []) {
      checkDs(t.datasource, where);
      problems.push(...checkPromql(t.expr ?? '', cat, where, jobs));
      for (const v of String(t.expr).matchAll(/\$(?!__)\{?(\w+)/g)) if (!vars.has(v[1])) problems.push(`${where}: variable $${v[1]} is not defined`);
    }
  }
  for (const v of dash.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const lv = v.type === 'query' ? /label_values\((\w+)\s*,\s*(\w+)\)/.exec(q ?? '') : null;
    if (v.type === 'query' && !lv) problems.push(`${source}: variable ${v.name}: expected label_values(metric, label)`);
    if (lv && !cat.labels.get(lv[1])?.has(lv[2])) problems.push(`${source}: variable ${v.name}: ${lv[1]} has no label ${lv[2]}`);
  }
  for (const a of dash.annotations?.list ?? []) if (a.expr) problems.push(...checkPromql(a.expr, cat, `${source}: annotation ${a.name}`, jobs));
  return problems;
}

// ----------------------------------------------------------------- Kubernetes

/** The arus image's command line in a container: the image's entrypoint is `node /app/bin/arus.js`. */
export function arusArgv(c: Obj): string[] | undefined {
  if (!/(^|\/)arus(:|@|$)/.test(c.image ?? '')) return undefined;
  const cmd: string[] = c.command ?? [];
  const at = cmd.findIndex((a) => a.endsWith('bin/arus.js') || a === 'arus');
  return [...(at >= 0 ? cmd.slice(at + 1) : []), ...(c.args ?? [])];
}

export type Workload = { obj: Obj; pod: Obj; labels: Obj; where: string };

export function workloads(objects: Obj[]): Workload[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind))
    .map((o) => ({ obj: o, pod: o.spec?.template?.spec ?? {}, labels: o.spec?.template?.metadata?.labels ?? {}, where: `${o.kind}/${o.metadata?.name}` }));
}

/** A workload's pods: a StatefulSet's are `<name>-<ordinal>`, each labelled with its name by the controller; others have one template. */
export function podsOf(w: Workload): { name: string; labels: Obj }[] {
  const name = String(w.obj.metadata?.name);
  if (w.obj.kind !== 'StatefulSet') return [{ name: `${name}-pod`, labels: w.labels }];
  return Array.from({ length: Number(w.obj.spec?.replicas ?? 1) }, (_, i) => ({ name: `${name}-${i}`, labels: { ...w.labels, 'statefulset.kubernetes.io/pod-name': `${name}-${i}` } }));
}

/**
 * A container's environment as Kubernetes gives it to one pod: literal values,
 * ConfigMap keys, and the pod's name from `fieldRef: metadata.name`; what this
 * cannot know (Secrets) stays out.
 */
export function containerEnv(c: Obj, pod: string, objects: Obj[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = pod;
    else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const v = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === ref.name)?.data?.[ref.key];
      if (v !== undefined) env[e.name] = String(v);
    }
  }
  return env;
}

/**
 * Where a host in a URL leads inside the cluster: a Service (`name`, `name.ns…`)
 * or a StatefulSet pod under its headless Service (`pod.service…`), and whether
 * that has `port`. A problem, or undefined when it resolves.
 */
export function resolveInCluster(objects: Obj[], host: string, port: number): string | undefined {
  const labels = host.split('.');
  const services = objects.filter((o) => o.kind === 'Service');
  const svc = services.find((s) => s.metadata?.name === labels[0]);
  if (svc) return svc.spec?.ports?.some((p: Obj) => Number(p.port) === port) ? undefined : `Service ${svc.metadata.name} has no port ${port}`;
  const headless = services.find((s) => s.metadata?.name === labels[1] && s.spec?.clusterIP === 'None');
  if (!headless) return `no Service ${labels[0]}${labels.length > 1 ? ` nor a pod of a headless Service ${labels[1]}` : ''}`;
  const sts = workloads(objects).find((w) => w.obj.kind === 'StatefulSet' && w.obj.spec?.serviceName === labels[1] && podsOf(w).some((p) => p.name === labels[0]));
  if (!sts) return `no StatefulSet of Service ${labels[1]} has a pod ${labels[0]}`;
  const exposes = (sts.pod.containers ?? []).some((c: Obj) => (c.ports ?? []).some((cp: Obj) => cp.containerPort === port));
  return exposes ? undefined : `pod ${labels[0]} (${sts.where}) has no container port ${port}`;
}

const selects = (selector: Obj | undefined, labels: Obj) => !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

export type K8sContext = {
  /** Names of Secrets and ConfigMaps made by kustomize generators, with their keys. */
  generated: { Secret: Map<string, Set<string>>; ConfigMap: Map<string, Set<string>> };
  cli: Cli;
  env: Set<string>;
};

/** The keys of the Secret cert-manager writes for a Certificate. */
export const CERT_SECRET_KEYS = ['tls.crt', 'tls.key', 'ca.crt'];

/** Secrets cert-manager writes for the Certificates here: name → keys. */
export function certificateSecrets(objects: Obj[]): Map<string, Set<string>> {
  return new Map(objects.filter((o) => o.kind === 'Certificate' && o.spec?.secretName).map((o) => [o.spec.secretName as string, new Set(CERT_SECRET_KEYS)]));
}

/** The port a URL reaches: its own, or its scheme's. */
export const urlPort = (u: URL) => Number(u.port || (u.protocol === 'https:' ? 443 : 80));

/** The objects a kustomization lists, and its generators (env files fall back to their `.example`). */
export function loadKustomization(dir: string): { objects: Obj[]; files: string[]; generated: K8sContext['generated']; problems: string[] } {
  const problems: string[] = [];
  const k = parseYamlFile(join(dir, 'kustomization.yaml'))[0];
  const files: string[] = k.resources ?? [];
  const objects: Obj[] = [];
  for (const f of files) {
    if (!existsSync(join(dir, f))) problems.push(`kustomization.yaml: resource ${f} does not exist`);
    else objects.push(...parseYamlFile(join(dir, f)).map((o) => ({ ...o, __file: f })));
  }
  const generated: K8sContext['generated'] = { Secret: new Map(), ConfigMap: new Map() };
  for (const [kind, list] of [['Secret', k.secretGenerator], ['ConfigMap', k.configMapGenerator]] as const)
    for (const g of list ?? []) {
      const keys = new Set<string>();
      for (const l of g.literals ?? []) keys.add(String(l).split('=')[0]);
      for (const f of g.files ?? []) keys.add(String(f).split('=')[0].split('/').at(-1)!);
      for (const e of g.envs ?? []) {
        const file = [join(dir, e), join(dir, `${e}.example`)].find((p) => existsSync(p));
        if (!file) problems.push(`kustomization.yaml: ${kind} ${g.name}: env file ${e} (or ${e}.example) does not exist`);
        else for (const line of readFileSync(file, 'utf8').split('\n')) if (/^\w+=/.test(line)) keys.add(line.split('=')[0]);
      }
      generated[kind].set(g.name, keys);
    }
  const listed = new Set(files);
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml'))
    if (!listed.has(f)) problems.push(`kustomization.yaml: ${f} is not listed in resources`);
  return { objects, files, generated, problems };
}

export function checkK8s(objects: Obj[], ctx: K8sContext): string[] {
  const problems: string[] = [];
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  /** The keys of a Secret or ConfigMap defined here or by a kustomize generator; undefined if there is none. */
  const certSecrets = certificateSecrets(objects);
  const named = (kind: 'Secret' | 'ConfigMap', name: string): Set<string> | undefined => {
    const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
    if (o) return new Set(Object.keys({ ...o.data, ...o.stringData }));
    return ctx.generated[kind].get(name) ?? (kind === 'Secret' ? certSecrets.get(name) : undefined);
  };
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata?.name}`;
    if (!o.apiVersion || !o.kind || !o.metadata?.name) problems.push(`${o.__file}: an object lacks apiVersion, kind or metadata.name`);
    if (seen.has(id)) problems.push(`${o.__file}: ${id} defined twice`);
    seen.add(id);
  }
  const wls = workloads(objects);
  const services = byKind('Service');
  const regions = regionsFromConfigMaps(objects, problems);

  for (const w of wls) {
    if (!selects(w.obj.spec?.selector?.matchLabels, w.labels)) problems.push(`${w.where}: selector.matchLabels does not match the pod template's labels`);
    const psc = w.pod.securityContext ?? {};
    if (w.pod.automountServiceAccountToken !== false) problems.push(`${w.where}: set automountServiceAccountToken: false (Arus never calls the Kubernetes API)`);
    const volumes = new Map<string, Obj>((w.pod.volumes ?? []).map((v: Obj) => [v.name, v]));
    for (const t of w.obj.spec?.volumeClaimTemplates ?? []) volumes.set(t.metadata?.name, { persistentVolumeClaim: {} });
    for (const v of w.pod.volumes ?? []) {
      if (v.configMap && !named('ConfigMap', v.configMap.name)) problems.push(`${w.where}: volume ${v.name}: no ConfigMap ${v.configMap.name}`);
      if (v.secret && !named('Secret', v.secret.secretName)) problems.push(`${w.where}: volume ${v.name}: no Secret ${v.secret.secretName}`);
      if (v.persistentVolumeClaim?.claimName && !objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata?.name === v.persistentVolumeClaim.claimName))
        problems.push(`${w.where}: volume ${v.name}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
    }
    if (w.obj.kind === 'StatefulSet') {
      const svc = services.find((s) => s.metadata?.name === w.obj.spec?.serviceName);
      if (!svc) problems.push(`${w.where}: serviceName ${w.obj.spec?.serviceName} names no Service`);
      else if (svc.spec?.clusterIP !== 'None') problems.push(`${w.where}: its serviceName ${svc.metadata.name} must be headless (clusterIP: None)`);
    }
    for (const c of w.pod.containers ?? []) {
      const where = `${w.where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push(`${where}: runAsNonRoot must be true`);
      if ((sc.runAsUser ?? psc.runAsUser) === 0) problems.push(`${where}: runs as root`);
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation must be false`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem must be true`);
      if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${where}: capabilities must drop ALL`);
      for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') problems.push(`${where}: adds capability ${cap}`);
      if ((sc.seccompProfile ?? psc.seccompProfile)?.type !== 'RuntimeDefault') problems.push(`${where}: seccompProfile must be RuntimeDefault`);
      const ports: Obj[] = c.ports ?? [];
      const portOk = (p: string | number) => ports.some((cp) => cp.name === p || cp.containerPort === p);
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'].map((k) => c[k]).filter(Boolean)) {
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
        if (port !== undefined && !portOk(port)) problems.push(`${where}: a probe uses port ${port}, which the container does not declare`);
        for (const a of probe.exec?.command ?? []) if (a.startsWith('/app/') && !existsSync(join(ROOT, a.slice(5)))) problems.push(`${where}: probe runs ${a}, not in the image`);
      }
      const promPort = w.obj.spec?.template?.metadata?.annotations?.['prometheus.io/port'];
      if (promPort && !portOk(Number(promPort))) problems.push(`${where}: prometheus.io/port ${promPort} is not a container port`);
      const mounts: Obj[] = c.volumeMounts ?? [];
      for (const m of mounts) if (!volumes.has(m.name)) problems.push(`${where}: volumeMount ${m.name} names no volume`);
      const envNames: string[] = (c.env ?? []).map((e: Obj) => e.name);
      problems.push(...checkEnvNames(envNames, where, ctx.env));
      for (const e of c.env ?? []) {
        for (const [kind, ref] of [['Secret', e.valueFrom?.secretKeyRef], ['ConfigMap', e.valueFrom?.configMapKeyRef]] as const) {
          if (!ref) continue;
          const keys = named(kind, ref.name);
          if (!keys) problems.push(`${where}: env ${e.name}: no ${kind} ${ref.name}`);
          else if (!keys.has(ref.key)) problems.push(`${where}: env ${e.name}: ${kind} ${ref.name} has no key ${ref.key}`);
        }
      }
      const raw = arusArgv(c);
      if (!raw) continue;
      problems.push(...checkInvocation({ source: where, argv: raw }, ctx.cli));
      const argv = expandVars(raw, containerEnv(c, podsOf(w)[0].name, objects));
      for (const a of raw) for (const v of a.matchAll(/\$\((\w+)\)/g)) if (!envNames.includes(v[1])) problems.push(`${where}: args use $(${v[1]}), which is not in env`);
      // Files Arus writes must be on a writable volume (the root filesystem is read-only).
      for (const flag of ['--db', '--snapshot']) {
        const path = flagValue(argv, flag);
        if (!path) continue;
        const m = mounts.find((mt) => path.startsWith(`${mt.mountPath}/`));
        if (!m || m.readOnly) problems.push(`${where}: ${flag} ${path} is not on a writable volume`);
      }
      const regionsDir = flagValue(argv, '--regions');
      if (regionsDir && !mounts.some((mt) => regionsDir === mt.mountPath || regionsDir.startsWith(`${mt.mountPath}/`))) problems.push(`${where}: --regions ${regionsDir} is not mounted`);
      for (const flag of ['--control', '--etcd']) {
        const value = flagValue(argv, flag);
        if (!value) continue;
        let urls: URL[];
        try {
          urls = urlList(value);
        } catch {
          problems.push(`${where}: ${flag} ${value} is not a list of URLs`);
          continue;
        }
        for (const u of urls) {
          const unresolved = resolveInCluster(objects, u.hostname, urlPort(u));
          if (unresolved) problems.push(`${where}: ${flag} ${u.origin}: ${unresolved}`);
        }
      }
      const region = flagValue(argv, '--region');
      if (region && regions) {
        const r = regions.regions.find((x) => x.id === region);
        if (!r) problems.push(`${where}: --region ${region} is not a region of the configuration (${regions.regions.map((x) => x.id).join(', ')})`);
        else if (argv[0] === 'balancer' && !r.balancer) problems.push(`${where}: region ${region} has no balancer section`);
        if (w.labels['arus-region'] !== undefined && w.labels['arus-region'] !== region) problems.push(`${where}: --region ${region} but labelled arus-region ${w.labels['arus-region']}`);
      }
      const low = lowestListenPort(argv);
      if (low !== undefined && low < 1024) {
        const sysctl = (psc.sysctls ?? []).find((s: Obj) => s.name === 'net.ipv4.ip_unprivileged_port_start');
        if (!sysctl || Number(sysctl.value) > low)
          problems.push(`${where}: binds port ${low} as non-root: set the pod sysctl net.ipv4.ip_unprivileged_port_start to ${low} (NET_BIND_SERVICE is not effective for a non-root user)`);
      }
    }
  }

  for (const s of services) {
    const where = `Service/${s.metadata?.name}`;
    const matched = wls.filter((w) => podsOf(w).some((p) => selects(s.spec?.selector, p.labels)));
    if (!matched.length) {
      problems.push(`${where}: selector ${JSON.stringify(s.spec?.selector)} matches no pod template`);
      continue;
    }
    for (const p of s.spec?.ports ?? []) {
      const target = p.targetPort ?? p.port;
      const protocol = p.protocol ?? 'TCP';
      for (const w of matched) {
        const ok = (w.pod.containers ?? []).some((c: Obj) => (c.ports ?? []).some((cp: Obj) => (cp.name === target || cp.containerPort === target) && (cp.protocol ?? 'TCP') === protocol));
        if (!ok) problems.push(`${where}: port ${p.name ?? p.port} targets ${target}/${protocol}, which ${w.where} does not expose`);
      }
    }
  }
  for (const pdb of byKind('PodDisruptionBudget'))
    if (!wls.some((w) => selects(pdb.spec?.selector?.matchLabels, w.labels))) problems.push(`PodDisruptionBudget/${pdb.metadata?.name}: selects no pod template`);
  return problems;
}

/** The Arus configuration carried in ConfigMaps (keys ending .yaml), validated by the real loader. */
export function regionsFromConfigMaps(objects: Obj[], problems: string[] = []): Config | undefined {
  const maps = objects.filter((o) => o.kind === 'ConfigMap' && Object.keys(o.data ?? {}).some((k) => k.endsWith('.yaml')));
  if (!maps.length) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'arus-infra-'));
  try {
    for (const m of maps) for (const [k, v] of Object.entries<string>(m.data)) if (k.endsWith('.yaml')) writeFileSync(join(dir, k), v);
    return loadConfig([dir]);
  } catch (err) {
    problems.push(`ConfigMap ${maps.map((m) => m.metadata?.name).join(', ')}: ${(err as Error).message.replaceAll(dir + '/', '')}`);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// -------------------------------------------------------------------- Compose

export const isArusService = (s: Obj) => s.image === 'arus:local' || /infra\/docker\/Dockerfile$/.test(s.build?.dockerfile ?? '');

/**
 * The `arus` command line a compose service of the image runs: its command,
 * or, with a shell entrypoint (`/bin/sh -c SCRIPT`), the `node /app/bin/arus.js …`
 * in the script, up to the next `&&`, `||` or `;`.
 */
export function arusCommand(s: Obj): string[] | undefined {
  const entry: string[] = Array.isArray(s.entrypoint) ? s.entrypoint.map(String) : [];
  if (!entry.length) return Array.isArray(s.command) ? s.command.map(String) : undefined;
  if (!/(^|\/)sh$/.test(entry[0]) || entry[1] !== '-c') return undefined;
  const script = [...entry.slice(2), ...(Array.isArray(s.command) ? s.command : [s.command ?? ''])].join(' ');
  const m = /\bnode\s+\S*bin\/arus\.js\s+([^;&|]+)/.exec(script);
  return m?.[1].trim().split(/\s+/);
}

/** Ports an Arus service listens on, from its command line. */
function listenPorts(argv: string[]): number[] {
  return [...LISTEN_FLAGS].flatMap((f) => (flagValue(argv, f) ?? '').split(',').map((s) => Number(LISTEN_ITEM.exec(s.trim())?.[1])).filter((n) => n > 0));
}

export function checkCompose(doc: Obj, dir: string, ctx: { cli: Cli; env: Set<string> }): string[] {
  const problems: string[] = [];
  const services: Obj = doc.services ?? {};
  const volumes = new Set(Object.keys(doc.volumes ?? {}));
  const networks = new Set(Object.keys(doc.networks ?? {}));
  const addresses = new Map<string, string>();
  const listens = new Map<string, number[]>();
  for (const [name, s] of Object.entries<Obj>(services)) if (isArusService(s)) listens.set(name, listenPorts(arusCommand(s) ?? []));

  for (const [name, s] of Object.entries<Obj>(services)) {
    const where = `compose service ${name}`;
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
    for (const d of deps) if (!services[d]) problems.push(`${where}: depends_on ${d}, which is not a service`);
    for (const v of s.volumes ?? []) {
      const src = String(typeof v === 'string' ? v.split(':')[0] : v.source);
      if (src.startsWith('.') || src.startsWith('/')) {
        if (!existsSync(join(dir, src))) problems.push(`${where}: bind mount ${src} does not exist`);
      } else if (!volumes.has(src)) problems.push(`${where}: volume ${src} is not declared`);
    }
    const nets = Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {});
    for (const n of nets) if (!networks.has(n)) problems.push(`${where}: network ${n} is not declared`);
    for (const [n, cfg] of Object.entries<Obj>(Array.isArray(s.networks) ? {} : (s.networks ?? {}))) {
      const ip = cfg?.ipv4_address;
      if (!ip) continue;
      if (addresses.has(ip)) problems.push(`${where}: ${ip} is also ${addresses.get(ip)}'s address`);
      addresses.set(ip, name);
      const subnets: string[] = (doc.networks?.[n]?.ipam?.config ?? []).map((c: Obj) => c.subnet);
      if (!subnets.some((sn) => inSubnet(ip, sn))) problems.push(`${where}: ${ip} is outside network ${n}'s subnets`);
    }
    problems.push(...checkEnvNames(Object.keys(s.environment ?? {}), where, ctx.env));
    if (!isArusService(s)) continue;
    const argv = arusCommand(s);
    if (!argv?.length) {
      problems.push(`${where}: command must be an arus command line as a list (or a shell entrypoint whose script runs node /app/bin/arus.js)`);
      continue;
    }
    problems.push(...checkInvocation({ source: where, argv }, ctx.cli));
    const uid = Number(String(s.user ?? '0').split(':')[0]);
    if (!(uid > 0)) problems.push(`${where}: must run as a non-root user`);
    if (!s.cap_drop?.includes('ALL')) problems.push(`${where}: cap_drop must include ALL`);
    if (s.read_only !== true) problems.push(`${where}: read_only must be true`);
    if (!(s.security_opt ?? []).some((o: string) => /^no-new-privileges(:true)?$/.test(o))) problems.push(`${where}: security_opt no-new-privileges`);
    const low = lowestListenPort(argv);
    const sysctl = s.sysctls?.['net.ipv4.ip_unprivileged_port_start'];
    if (low !== undefined && low < 1024 && !(sysctl !== undefined && Number(sysctl) <= low)) problems.push(`${where}: binds ${low} as non-root without sysctls net.ipv4.ip_unprivileged_port_start <= ${low}`);
    const control = flagValue(argv, '--control');
    if (control)
      for (const u of urlList(control)) if (!listens.get(u.hostname)?.includes(urlPort(u))) problems.push(`${where}: --control ${u.origin}: no service ${u.hostname} listening on ${urlPort(u)}`);
    for (const p of s.ports ?? []) {
      const m = /:(\d+)(?:\/(udp|tcp))?$/.exec(String(p));
      if (m && !listenPorts(argv).includes(Number(m[1]))) problems.push(`${where}: publishes container port ${m[1]}, which it does not listen on`);
    }
  }

  // The configuration control seeds from, and what it points at.
  const control = Object.entries<Obj>(services).find(([, s]) => isArusService(s) && arusCommand(s)?.[0] === 'control');
  const regionsDir = control && flagValue(arusCommand(control[1])!, '--regions');
  const mount = regionsDir && (control[1].volumes ?? []).map(String).find((v: string) => v.split(':')[1] === regionsDir);
  if (!control || !mount) return [...problems, 'compose: control has no --regions folder mounted'];
  let config: Config;
  try {
    config = loadConfig([join(dir, mount.split(':')[0])]);
  } catch (err) {
    return [...problems, `compose regions: ${(err as Error).message}`];
  }
  for (const [name, s] of Object.entries<Obj>(services)) {
    const region = isArusService(s) ? flagValue(arusCommand(s) ?? [], '--region') : undefined;
    if (region && !config.regions.some((r) => r.id === region)) problems.push(`compose service ${name}: --region ${region} is not in the configuration`);
  }
  for (const r of config.regions) {
    for (const z of r.zones)
      for (const e of z.endpoints) {
        if (!addresses.has(e.address ?? '')) problems.push(`compose regions: ${r.id}/${z.id} endpoint ${e.address} is no service's address`);
        if (e.check?.type === 'http') {
          const u = new URL(e.check.url);
          if (!listens.get(u.hostname)?.includes(urlPort(u))) problems.push(`compose regions: ${r.id}/${z.id} check ${e.check.url}: no service ${u.hostname} listening on ${urlPort(u)}`);
        }
      }
    for (const i of r.balancer?.instances ?? []) {
      const u = new URL(i.url);
      if (!listens.get(u.hostname)?.includes(urlPort(u))) problems.push(`compose regions: ${r.id} balancer instance ${i.url}: no service ${u.hostname} listening on ${urlPort(u)}`);
    }
  }
  return problems;
}

function inSubnet(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
}

/** Prometheus targets (HOST:PORT) that name a compose service and a port it listens on. */
export function checkTargetsAgainstCompose(targets: string[], compose: Obj): string[] {
  const problems: string[] = [];
  for (const t of targets) {
    const [host, port] = t.split(':');
    const s = compose.services?.[host];
    if (!s) problems.push(`target ${t}: no compose service ${host}`);
    else if (isArusService(s) && !listenPorts(arusCommand(s) ?? []).includes(Number(port))) problems.push(`target ${t}: ${host} does not listen on ${port}`);
  }
  return problems;
}

// -------------------------------------------------------------------- systemd

export type Unit = Map<string, [string, string][]>;

export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  for (const raw of text.replace(/\\\n\s*/g, ' ').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1];
      unit.set(section, unit.get(section) ?? []);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) throw new Error(`not a unit-file line: ${line}`);
    unit.get(section)!.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

const get = (unit: Unit, section: string, key: string) => (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);

/** The `arus` command line of ExecStart, `%i` as `sg`, `${VAR}` from Environment=. */
export function unitInvocation(unit: Unit, source: string): Invocation | undefined {
  const exec = get(unit, 'Service', 'ExecStart')[0];
  if (!exec) return undefined;
  const words = exec.split(/\s+/);
  const at = words.findIndex((w) => w.endsWith('bin/arus.js') || /(^|\/)arus$/.test(w));
  return at < 0 ? undefined : { source, argv: words.slice(at + 1) };
}

/** The instance a template unit is checked as (`%i`): a region, or a replica's name. */
const UNIT_INSTANCE: Record<string, string> = { 'arus-control@.service': 'control-1' };

/**
 * ExecStart's arus command line as the unit runs it: `${VAR}` from
 * Environment=, `%i` as the instance (`sg`, or `control-1` for control's
 * replica), `%H` as `host`; and Environment=.
 */
export function resolveUnit(unit: Unit, name: string, instance = UNIT_INSTANCE[name] ?? 'sg'): { argv: string[]; envs: Map<string, string>; problems: string[] } | undefined {
  const inv = unitInvocation(unit, name);
  if (!inv) return undefined;
  const problems: string[] = [];
  if (inv.argv.join(' ').includes('%i') !== name.includes('@.')) problems.push(`${name}: %i belongs in template units (name@.service) only`);
  const envs = new Map<string, string>();
  const specifiers = (v: string) => v.replaceAll('%i', instance).replaceAll('%H', 'host');
  for (const e of get(unit, 'Service', 'Environment')) for (const kv of e.split(/\s+/)) envs.set(kv.split('=')[0], specifiers(kv.slice(kv.indexOf('=') + 1)));
  const argv = inv.argv.map((a) =>
    specifiers(
      a.replace(/\$\{(\w+)\}/g, (_, v: string) => {
        if (!envs.has(v)) problems.push(`${name}: ExecStart uses \${${v}}, which no Environment= sets`);
        return envs.get(v) ?? '';
      }),
    ),
  );
  return { argv, envs, problems };
}

export function checkUnit(name: string, text: string, ctx: { cli: Cli; env: Set<string> }): string[] {
  const problems: string[] = [];
  let unit: Unit;
  try {
    unit = parseUnit(text);
  } catch (err) {
    return [`${name}: ${(err as Error).message}`];
  }
  for (const s of ['Unit', 'Service', 'Install']) if (!unit.has(s)) problems.push(`${name}: no [${s}] section`);
  const one = (section: string, key: string) => get(unit, section, key).at(-1);
  if (!one('Unit', 'Description')) problems.push(`${name}: no Description=`);
  if (!one('Install', 'WantedBy')) problems.push(`${name}: no WantedBy=`);
  const resolved = resolveUnit(unit, name);
  if (!resolved) return [...problems, `${name}: ExecStart does not run arus`];
  const { argv, envs } = resolved;
  problems.push(...resolved.problems);
  problems.push(...checkEnvNames([...envs.keys()], name, ctx.env));
  problems.push(...checkInvocation({ source: name, argv }, ctx.cli));

  // Least privilege.
  const yes = (k: string) => /^(yes|true|1|on)$/.test(one('Service', k) ?? '');
  if (!yes('DynamicUser') && !/^(?!root$)\w+/.test(one('Service', 'User') ?? '')) problems.push(`${name}: needs DynamicUser=yes or a non-root User=`);
  if (!yes('NoNewPrivileges')) problems.push(`${name}: NoNewPrivileges=yes`);
  if (one('Service', 'ProtectSystem') !== 'strict') problems.push(`${name}: ProtectSystem=strict`);
  const bounding = one('Service', 'CapabilityBoundingSet');
  const ambient = one('Service', 'AmbientCapabilities') ?? '';
  const low = lowestListenPort(argv);
  if (low !== undefined && low < 1024) {
    if (ambient !== 'CAP_NET_BIND_SERVICE') problems.push(`${name}: binds ${low}: AmbientCapabilities=CAP_NET_BIND_SERVICE`);
    if (bounding !== 'CAP_NET_BIND_SERVICE') problems.push(`${name}: binds ${low}: CapabilityBoundingSet=CAP_NET_BIND_SERVICE and nothing more`);
  } else {
    if (bounding !== '') problems.push(`${name}: CapabilityBoundingSet= (empty: no capability)`);
    if (ambient) problems.push(`${name}: needs no AmbientCapabilities`);
  }
  // With ProtectSystem=strict only the state directories are writable.
  const states = get(unit, 'Service', 'StateDirectory').flatMap((v) => v.split(/\s+/)).map((d) => `/var/lib/${d}/`);
  for (const flag of ['--db', '--snapshot']) {
    const path = flagValue(argv, flag);
    if (path && !states.some((d) => path.startsWith(d))) problems.push(`${name}: ${flag} ${path} is outside StateDirectory (read-only under ProtectSystem=strict)`);
  }
  return problems;
}

// ----------------------------------------------------------------- Dockerfile

export type Instruction = { op: string; args: string; line: number };

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) line = line.replace(/\\\s*$/, ' ') + lines[++i].trim();
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start });
  }
  return out;
}

const execForm = (args: string): string[] | undefined => {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) ? v.map(String) : undefined;
  } catch {
    return undefined;
  }
};

export function checkDockerfile(text: string, ignoreFile: string | undefined, ctx: { cli: Cli; env: Set<string> }, source = 'Dockerfile'): string[] {
  const problems: string[] = [];
  const ins = parseDockerfile(text);
  const stages: string[] = [];
  let finalStart = 0;
  ins.forEach((x, i) => {
    if (x.op !== 'FROM') return;
    const m = /\sAS\s+(\S+)/i.exec(x.args);
    stages.push(m?.[1] ?? '');
    finalStart = i;
    if (!m) problems.push(`${source}:${x.line}: name every stage (FROM … AS name)`);
  });
  if (stages.length < 2) problems.push(`${source}: needs a build stage and a runtime stage (multi-stage)`);
  const final = ins.slice(finalStart);
  const allowed = ignoreFile === undefined ? undefined : ignoreFile.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  let stageIndex = -1;
  let workdir = '/';
  /** Absolute paths the runtime stage copies files to. */
  const copiedTo: string[] = [];
  for (const x of ins) {
    if (x.op === 'FROM') {
      stageIndex++;
      workdir = '/';
    }
    if (x.op === 'WORKDIR') workdir = posix.resolve(workdir, x.args);
    if (x.op !== 'COPY' && x.op !== 'ADD') continue;
    const from = /--from=(\S+)/.exec(x.args)?.[1];
    const parts = x.args.replace(/--\S+/g, '').trim().split(/\s+/);
    const dest = parts.pop()!;
    const into = dest.endsWith('/') || parts.length > 1;
    if (stageIndex === stages.length - 1) copiedTo.push(...parts.map((p) => posix.resolve(workdir, dest, into ? posix.basename(p) : '')));
    if (from) {
      if (!stages.slice(0, stageIndex).includes(from)) problems.push(`${source}:${x.line}: COPY --from=${from} names no earlier stage`);
      continue;
    }
    for (const p of parts) {
      if (!existsSync(join(ROOT, p))) problems.push(`${source}:${x.line}: COPY ${p}: not in the repository`);
      if (allowed && !allowed.some((a) => p === a || p.startsWith(`${a}/`) || a.startsWith(`${p.replace(/\/$/, '')}/`))) problems.push(`${source}:${x.line}: COPY ${p} is excluded by the .dockerignore`);
    }
  }
  const users = final.filter((x) => x.op === 'USER');
  const user = users.at(-1)?.args.split(':')[0];
  if (!user || user === 'root' || user === '0') problems.push(`${source}: the runtime stage must end as a non-root USER`);
  const health = final.find((x) => x.op === 'HEALTHCHECK');
  if (!health || /^NONE$/i.test(health.args)) problems.push(`${source}: the runtime stage has no HEALTHCHECK`);
  else {
    const cmd = execForm(health.args.replace(/^(--\S+\s+)*CMD\s+/, '')) ?? [];
    for (const a of cmd) if (a.startsWith('/app/') && !copiedTo.includes(a)) problems.push(`${source}:${health.line}: HEALTHCHECK runs ${a}, which the runtime stage does not COPY`);
  }
  const entry = execForm(final.filter((x) => x.op === 'ENTRYPOINT').at(-1)?.args ?? '');
  if (!entry?.some((a) => a.endsWith('bin/arus.js'))) problems.push(`${source}: ENTRYPOINT must run bin/arus.js (exec form)`);
  const cmd = execForm(final.filter((x) => x.op === 'CMD').at(-1)?.args ?? '');
  if (cmd) problems.push(...checkInvocation({ source: `${source} CMD`, argv: cmd }, ctx.cli));
  const exposed = final.filter((x) => x.op === 'EXPOSE').flatMap((x) => x.args.split(/\s+/));
  for (const p of ['53/udp', '53/tcp']) if (!exposed.includes(p)) problems.push(`${source}: EXPOSE ${p}`);
  const envs = final.filter((x) => x.op === 'ENV').flatMap((x) => [...x.args.matchAll(/(\w+)=/g)].map((m) => m[1]));
  problems.push(...checkEnvNames(envs, source, ctx.env));
  problems.push(...checkCompiledRuntime(ins, stages, source));
  return problems;
}

/**
 * The runtime runs compiled JavaScript: a build stage runs `npm run build`, the
 * runtime copies its dist/ and a production-only node_modules, and no sources
 * (bin/arus.js would then prefer them through tsx, a dev tool's loader).
 */
function checkCompiledRuntime(ins: Instruction[], stages: string[], source: string): string[] {
  const problems: string[] = [];
  const byStage = new Map<string, Instruction[]>();
  let current = '';
  for (const x of ins) {
    if (x.op === 'FROM') {
      current = /\sAS\s+(\S+)/i.exec(x.args)?.[1] ?? '';
      byStage.set(current, []);
      // A stage built FROM another starts with what that one ran.
      const base = x.args.split(/\s+/)[0];
      if (byStage.has(base) && base !== current) byStage.get(current)!.push(...byStage.get(base)!);
    } else byStage.get(current)?.push(x);
  }
  const runs = (stage: string, re: RegExp) => (byStage.get(stage) ?? []).some((x) => x.op === 'RUN' && re.test(x.args));
  const final = byStage.get(stages.at(-1) ?? '') ?? [];
  const copiesFrom = (re: RegExp) => final.filter((x) => x.op === 'COPY' && re.test(x.args)).map((x) => /--from=(\S+)/.exec(x.args)?.[1]);
  const dist = copiesFrom(/--from=\S+\s+\S*\/dist\/?\s/);
  if (!dist.length) problems.push(`${source}: the runtime stage copies no dist/ from a build stage`);
  for (const from of dist) if (from && !runs(from, /\bnpm run build\b/)) problems.push(`${source}: dist/ comes from stage ${from}, which does not run npm run build`);
  const modules = copiesFrom(/--from=\S+\s+\S*node_modules\s/);
  if (!modules.length) problems.push(`${source}: the runtime stage copies no node_modules from a dependency stage`);
  for (const from of modules) if (from && !runs(from, /\bnpm ci\b.*--omit=dev/)) problems.push(`${source}: node_modules comes from stage ${from}, which does not run npm ci --omit=dev`);
  for (const x of final) if (x.op === 'COPY' && !/--from=/.test(x.args) && /(^|\s)\.?\/?src\/?(\s|$)/.test(x.args)) problems.push(`${source}:${x.line}: the runtime stage copies src/: it runs dist/`);
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
  // package.json's own lifecycle scripts (prepare builds dist/ with the dev tools) must not run where those are missing:
  // the production install skips scripts, and rebuilds the native modules that need theirs.
  for (const from of modules)
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
      if (scripts[hook] && from && !(runs(from, /\bnpm ci\b.*--omit=dev.*--ignore-scripts|\bnpm ci\b.*--ignore-scripts.*--omit=dev/) && runs(from, /\bnpm rebuild better-sqlite3\b/)))
        problems.push(`package.json: its ${hook} script runs during stage ${from}'s npm ci --omit=dev, where dev tools are missing (add --ignore-scripts, then npm rebuild better-sqlite3)`);
  return problems;
}

/** What the build context holds, per the .dockerignore next to the Dockerfile: its `!` allow-list, less its exclusions. */
export function contextFilter(ignoreFile: string): (path: string) => boolean {
  const lines = ignoreFile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const glob = (g: string) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('**/', '\u0000').replaceAll('*', '[^/]*').replaceAll('\u0000', '(.*/)?')}(/.*)?$`);
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => glob(l.slice(1).replace(/\/$/, '')));
  const excluded = lines.filter((l) => !l.startsWith('!') && l !== '*').map(glob);
  return (path) => allowed.some((a) => a.test(path)) && !excluded.some((e) => e.test(path));
}

/** Every production package's top-level folder in package-lock.json (what `npm ci --omit=dev` installs). */
export function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; devOptional?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([k, v]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(k) && !v.dev && !v.devOptional)
    .map(([k]) => k.slice('node_modules/'.length));
}

/**
 * Replays the Dockerfile in `dir` without Docker: per stage, FROM (a copy of an
 * earlier stage), WORKDIR, COPY (from the build context as the .dockerignore
 * lets it in, or --from a stage), and the npm steps — `npm ci` links this
 * checkout's node_modules, `npm ci --omit=dev` links only the production
 * packages (less `without`), `npm run build` runs. Other RUN steps (apt-get,
 * users) are the base image's business. Returns each stage's /app.
 */
export async function replayDockerfile(text: string, ignoreFile: string, dir: string, o: { without?: string[] } = {}): Promise<Map<string, string>> {
  const inContext = contextFilter(ignoreFile);
  const roots = new Map<string, { root: string; workdir: string }>();
  let stage: { root: string; workdir: string } | undefined;
  const at = (st: { root: string; workdir: string }, p: string) => join(st.root, posix.resolve(st.workdir, p));
  for (const x of parseDockerfile(text)) {
    if (x.op === 'FROM') {
      const [base, , name] = x.args.split(/\s+/);
      const root = join(dir, name);
      const from = roots.get(base);
      if (from) cpSync(from.root, root, { recursive: true, verbatimSymlinks: true });
      else mkdirSync(root, { recursive: true });
      stage = { root, workdir: from?.workdir ?? '/' };
      roots.set(name, stage);
    } else if (!stage) continue;
    else if (x.op === 'WORKDIR') stage.workdir = posix.resolve(stage.workdir, x.args);
    else if (x.op === 'COPY') {
      const fromStage = /--from=(\S+)/.exec(x.args)?.[1];
      const parts = x.args.replace(/--\S+/g, '').trim().split(/\s+/);
      const dest = parts.pop()!;
      const into = dest.endsWith('/') || parts.length > 1;
      for (const src of parts) {
        const target = at(stage, into ? posix.join(dest, posix.basename(src)) : dest);
        mkdirSync(dirname(target), { recursive: true });
        if (fromStage) cpSync(join(roots.get(fromStage)!.root, src), target, { recursive: true, verbatimSymlinks: true });
        else cpSync(join(ROOT, src), target, { recursive: true, filter: (f) => statSync(f).isDirectory() || inContext(relative(ROOT, f)) });
      }
    } else if (x.op === 'RUN') {
      const cwd = at(stage, '.');
      if (/\bnpm ci\b/.test(x.args)) {
        const modules = join(cwd, 'node_modules');
        if (!/--omit=dev/.test(x.args)) symlinkSync(join(ROOT, 'node_modules'), modules);
        else
          for (const pkg of productionPackages().filter((p) => !o.without?.includes(p))) {
            mkdirSync(dirname(join(modules, pkg)), { recursive: true });
            symlinkSync(join(ROOT, 'node_modules', pkg), join(modules, pkg));
          }
      }
      if (/\bnpm run build\b/.test(x.args)) await run('npm', ['run', '--silent', 'build'], { cwd, maxBuffer: 1 << 24 });
    }
  }
  return new Map([...roots].map(([name, st]) => [name, at(st, '.')]));
}

/** For messages: a path relative to the repository. */
export const rel = (p: string) => relative(ROOT, p);
export { dirname };
