// `arus drain` and `arus undrain`: an operator's override on a region, zone or
// endpoint — out of answers, forced up, or back to what the probes say.
import type { OverrideWrite } from '../db/writes.js';
import type { Logger } from '../log.js';
import type { Command, Values } from './command.js';
import { etcdHelp, etcdOpt } from './etcd-options.js';
import { openEtcdStore } from './etcd-store.js';
import { tlsOpt } from './tls-options.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

export const drainCommand: Command = {
  usage: `arus drain <region:ID | zone:REGION/ZONE | endpoint:REGION/ZONE/ADDRESS> --reason TEXT [--db FILE | --etcd URL,...]
       arus drain <subject> --force-up --reason TEXT   (force up whatever probes say)

${etcdHelp}`,
  options: { ...opt.db, reason: { type: 'string' }, 'force-up': { type: 'boolean', default: false }, ...etcdOpt, ...tlsOpt.insecure },
  async run({ values, positionals }, log) {
    const [subject] = positionals;
    if (!subject || !values.reason) throw new UsageError('drain needs a subject and --reason');
    const r = await override(values, log, { subject, mode: values['force-up'] ? 'force-up' : 'drain', reason: String(values.reason), actor: 'cli' });
    console.log(r.changed ? `${values['force-up'] ? 'forced up' : 'drained'} ${subject}` : `${subject} was already so`);
  },
};

export const undrainCommand: Command = {
  usage: `arus undrain <subject> [--reason TEXT] [--db FILE | --etcd URL,...]

${etcdHelp}`,
  options: { ...opt.db, reason: { type: 'string', default: 'undrained' }, ...etcdOpt, ...tlsOpt.insecure },
  async run({ values, positionals }, log) {
    const [subject] = positionals;
    if (!subject) throw new UsageError('undrain needs a subject');
    const r = await override(values, log, { subject, mode: 'none', reason: String(values.reason), actor: 'cli' });
    console.log(r.changed ? `undrained ${subject}` : `${subject} had no override`);
  },
};

/** The override, written to the database or, with --etcd, to the replicated store. */
async function override(values: Values, log: Logger, o: OverrideWrite): Promise<{ changed: boolean }> {
  const { checkSubject, setOverride } = await import('../control/overrides.js');
  const etcd = await openEtcdStore(values, log);
  if (!etcd) return setOverride(await openStores(String(values.db)), o);
  try {
    checkSubject(await etcd.writes.config(), o.subject);
    return await etcd.writes.setOverride(o);
  } finally {
    etcd.close();
  }
}
