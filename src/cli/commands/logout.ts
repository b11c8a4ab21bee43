/** `zenith logout`: end the remembered session. */
import type { Command } from 'commander';
import { ApiClient, writeConfig } from '../client.js';

export function registerLogout(program: Command): void {
  program
    .command('logout')
    .description('End the remembered session')
    .action(async (_options: unknown, command: Command) => {
      const client = ApiClient.fromConfig(command.optsWithGlobals());
      await client.post('/auth/logout').catch(() => undefined);
      writeConfig({ server: client.server });
      process.stderr.write('Logged out\n');
    });
}
