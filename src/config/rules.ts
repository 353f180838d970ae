import type { DocumentRules } from '../db/documents.js';
import { ConfigError, parseRegionDoc, parseZoneDoc, validateConfig } from './load.js';

/** The configuration's rules, as the store applies them to every document it writes and reads back. */
export const configRules: DocumentRules = {
  parseZone: parseZoneDoc,
  parseRegion: parseRegionDoc,
  validate: validateConfig,
  duplicate: (source, id) => new ConfigError([{ source, path: 'id', message: `region "${id}" given twice` }]),
};
