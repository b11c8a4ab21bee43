/** `zenith whoami`: the identity and role of the remembered session. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { printJson, printKeyValues } from '../output.js';

export function registerWhoami(program: Command): void {
  program
    .command('whoami')
    .description('Show the identity and role of the remembered session')
    .action(async (_options: unknown, command: Command) => {
      const globals = command.optsWithGlobals<{ json?: boolean; server?: string }>();
      const me = await ApiClient.fromConfig(globals).get<Record<string, unknown>>('/auth/me');
      if (globals.json) printJson(me);
      else
        printKeyValues([
          ['name', me.name],
          ['id', me.id],
          ['kind', me.kind],
          ['role', me.role],
        ]);
    });
}
