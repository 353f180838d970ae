// `arus drain` and `arus undrain`: an operator's override on a region, zone or
// endpoint — out of answers, forced up, or back to what the probes say.
import type { Command } from './command.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

export const drainCommand: Command = {
  usage: `arus drain <region:ID | zone:REGION/ZONE | endpoint:REGION/ZONE/ADDRESS> --reason TEXT [--db FILE]
       arus drain <subject> --force-up --reason TEXT   (force up whatever probes say)`,
  options: { ...opt.db, reason: { type: 'string' }, 'force-up': { type: 'boolean', default: false } },
  async run({ values, positionals }) {
    const [subject] = positionals;
    if (!subject || !values.reason) throw new UsageError('drain needs a subject and --reason');
    const { setOverride } = await import('../control/overrides.js');
    const r = setOverride(await openStores(String(values.db)), { subject, mode: values['force-up'] ? 'force-up' : 'drain', reason: String(values.reason), actor: 'cli' });
    console.log(r.changed ? `${values['force-up'] ? 'forced up' : 'drained'} ${subject}` : `${subject} was already so`);
  },
};

export const undrainCommand: Command = {
  usage: `arus undrain <subject> [--reason TEXT] [--db FILE]`,
  options: { ...opt.db, reason: { type: 'string', default: 'undrained' } },
  async run({ values, positionals }) {
    const [subject] = positionals;
    if (!subject) throw new UsageError('undrain needs a subject');
    const { setOverride } = await import('../control/overrides.js');
    const r = setOverride(await openStores(String(values.db)), { subject, mode: 'none', reason: String(values.reason), actor: 'cli' });
    console.log(r.changed ? `undrained ${subject}` : `${subject} had no override`);
  },
};
