// What a command module gives the entry (src/cli.ts). Its one-line summary
// stays in the entry's table, so `arus --help` loads no command.
import type { ParseArgsConfig } from 'node:util';
import type { Logger } from '../log.js';

/** Option values as parseArgs gives them. */
export type Values = Record<string, string | boolean | undefined>;

/** One `arus <command>`: its usage text, its options for parseArgs, and what it does. */
export interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Values; positionals: string[] }, log: Logger): Promise<void> | void;
}
