import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import type { Documents } from '../db/documents.js';
import { crossCheck, regionSchema, zoneSchema, type Config, type RegionDoc, type ZoneDoc } from './schema.js';

/** One problem in the configuration: where it is and what is wrong. */
export type ConfigIssue = {
  /** The file (or other origin, e.g. `database`) the document came from. */
  source?: string;
  /** Field path inside the document, e.g. `zones[1].endpoints[0].address`; empty for the whole document. */
  path: string;
  message: string;
  /** 1-based line in `source`, when known. */
  line?: number;
};

/** A configuration that cannot be used; `issues` lists every problem found, the message has one per line. */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[] | string) {
    const list = typeof issues === 'string' ? [{ path: '', message: issues }] : issues;
    super(list.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = list;
  }
}

/** Configuration documents before the cross-document checks: what files or a request carry. */

/** Where each loaded document came from, so later errors can name the file. */
export type DocumentSources = { zone?: string; regions: Record<string, string> };

export function formatIssue(issue: ConfigIssue): string {
  const where = [issue.source, issue.path].filter(Boolean).join(': ');
  return `${where ? `${where}: ` : ''}${issue.message}${issue.line ? ` (line ${issue.line})` : ''}`;
}

/** `['zones', 1, 'endpoints', 0, 'address']` → `zones[1].endpoints[0].address`; odd keys are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

type FlatIssue = { path: PropertyKey[]; message: string };

// zod nests the causes of record-key and union failures; flatten them into
// one message per field, choosing the union branch that came closest.
function flatten(issues: readonly z.core.$ZodIssue[], base: PropertyKey[] = []): FlatIssue[] {
  return issues.flatMap((issue): FlatIssue[] => {
    const path = [...base, ...issue.path];
    switch (issue.code) {
      case 'unrecognized_keys':
        return issue.keys.map((key) => ({ path: [...path, key], message: 'unknown field' }));
      case 'invalid_key':
        return flatten(issue.issues, path);
      case 'invalid_union': {
        const branches = [...issue.errors].sort((a, b) => a.length - b.length);
        if (branches.length > 1 && branches[0].length < branches[1].length) return flatten(branches[0], path);
        return [{ path, message: issue.message }];
      }
      default:
        return [{ path, message: issue.message }];
    }
  });
}

const required: z.core.$ZodErrorMap = (issue) =>
  issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : undefined;

function parseWith<T>(schema: z.ZodType<T>, input: unknown, source: string | undefined, lineOf?: (path: PropertyKey[]) => number | undefined): T {
  const result = schema.safeParse(input, { error: required });
  if (result.success) return result.data;
  throw new ConfigError(
    flatten(result.error.issues).map((i) => ({ source, path: formatPath(i.path), message: i.message, line: lineOf?.(i.path) })),
  );
}

/** Validates a zone-settings document (YAML content or a REST body); throws a ConfigError naming each bad field. */
export function parseZoneDoc(input: unknown, source?: string): ZoneDoc {
  return parseWith(zoneSchema, input, source);
}

/** Validates a region document (YAML content or a REST body); throws a ConfigError naming each bad field. */
export function parseRegionDoc(input: unknown, source?: string): RegionDoc {
  return parseWith(regionSchema, input, source);
}

function yamlFiles(paths: string[], issues: ConfigIssue[]): string[] {
  return paths.flatMap((p) => {
    try {
      if (!statSync(p).isDirectory()) return [p];
      return readdirSync(p)
        .filter((name) => /\.ya?ml$/i.test(name))
        .sort()
        .map((name) => join(p, name));
    } catch (err) {
      issues.push({ source: p, path: '', message: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : String(err) });
      return [];
    }
  });
}

// The line of the deepest part of `path` present in the document: the key's
// line for a mapping entry, so a missing field points at its parent.
function lineFinder(doc: Document, lines: LineCounter) {
  return (path: PropertyKey[]): number | undefined => {
    let node: unknown = doc.contents;
    let offset = (node as Node | null)?.range?.[0];
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (!pair) break;
        offset = (pair.key as Node | null)?.range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
        node = node.items[seg];
        offset = (node as Node).range?.[0] ?? offset;
      } else break;
    }
    return offset === undefined ? undefined : lines.linePos(offset).line;
  };
}

/**
 * Reads YAML files, or every `*.yaml`/`*.yml` in a folder (sorted), into
 * validated documents. A document with an `apex` key is the zone's settings,
 * any other is a region; a file may hold several documents. Every problem in
 * every file is collected into one ConfigError that names file, field and reason.
 */
export function loadDocuments(paths: string[]): Documents & { sources: DocumentSources } {
  const issues: ConfigIssue[] = [];
  const out: Documents & { sources: DocumentSources } = { regions: [], sources: { regions: {} } };

  for (const file of yamlFiles(paths, issues)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      issues.push({ source: file, path: '', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const lines = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false });
    if (!Array.isArray(docs)) continue; // only comments or nothing: no documents

    for (const doc of docs) {
      if (doc.errors.length > 0) {
        for (const e of doc.errors)
          issues.push({ source: file, path: '', message: `invalid YAML: ${e.message.split('\n')[0]}`, line: lines.linePos(e.pos[0]).line });
        continue;
      }
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) continue;
      const lineOf = lineFinder(doc, lines);
      if (typeof value !== 'object' || Array.isArray(value)) {
        issues.push({ source: file, path: '', message: "expected a mapping: a region or the zone's settings (with apex)", line: lineOf([]) });
        continue;
      }
      try {
        if ('apex' in value) {
          const zone = parseWith(zoneSchema, value, file, lineOf);
          if (out.sources.zone !== undefined) {
            issues.push({ source: file, path: '', message: `the zone's settings are also defined in ${out.sources.zone}`, line: lineOf([]) });
          } else {
            out.zone = zone;
            out.sources.zone = file;
          }
        } else {
          const region = parseWith(regionSchema, value, file, lineOf);
          const first = out.sources.regions[region.id];
          if (first !== undefined) {
            issues.push({ source: file, path: 'id', message: `region "${region.id}" is also defined in ${first}`, line: lineOf(['id']) });
          } else {
            out.regions.push(region);
            out.sources.regions[region.id] = file;
          }
        }
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        issues.push(...err.issues);
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return out;
}

/**
 * Checks that documents make a whole configuration: zone settings present,
 * region ids unique, and `crossCheck` (references to regions) passes. When the
 * documents carry `sources` (from loadDocuments), errors name the file.
 */
export function validateConfig(docs: Documents & { sources?: DocumentSources }): Config {
  if (!docs.zone) {
    throw new ConfigError([{ path: '', message: "no zone settings: one document needs an apex (usually regions/zone.yaml)" }]);
  }
  const config: Config = { zone: docs.zone, regions: docs.regions };
  const issues = crossCheck(config).map((line): ConfigIssue => {
    const cut = line.indexOf(': ');
    const path = cut < 0 ? '' : line.slice(0, cut);
    const message = cut < 0 ? line : line.slice(cut + 2);
    // Named by file, a zone field's path is relative to that file's document.
    const zoneFile = path.startsWith('zone.') ? docs.sources?.zone : undefined;
    return zoneFile ? { source: zoneFile, path: path.slice('zone.'.length), message } : { path, message };
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** loadDocuments then validateConfig: the whole configuration from files, or a ConfigError. */
export function loadConfig(paths: string[]): Config {
  return validateConfig(loadDocuments(paths));
}
