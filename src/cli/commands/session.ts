import type { Command } from 'commander';
import { ApiClient, readConfig, writeConfig } from '../client.js';
import { printJson, printKeyValues } from '../output.js';
import { readSecret } from '../prompt.js';

export function registerSession(program: Command): void {
  program
    .command('login')
    .description('Log in and remember the session for later commands')
    .option('--user <name>', 'user name', 'admin')
    .option('--password-stdin', 'read the password from standard input')
    .action(async (options: { user: string; passwordStdin?: boolean }, command: Command) => {
      const server = command.optsWithGlobals<{ server?: string }>().server ?? readConfig().server;
      const password =
        process.env.ZENITH_PASSWORD ??
        (await readSecret(`Password for ${options.user}@${server}: `));
      const client = new ApiClient(server, undefined);
      const session = await client.post<{
        token: string;
        expiresAt: number;
        identity: { name: string; role: string };
      }>('/auth/login', { username: options.user, password });
      writeConfig({ server, token: session.token, user: session.identity.name });
      process.stderr.write(
        `Logged in to ${server} as ${session.identity.name} (${session.identity.role}); session ends ${new Date(session.expiresAt).toISOString()}\n`,
      );
    });
  program
    .command('logout')
    .description('End the remembered session')
    .action(async (_options: unknown, command: Command) => {
      const client = ApiClient.fromConfig(command.optsWithGlobals());
      await client.post('/auth/logout').catch(() => undefined);
      writeConfig({ server: client.server });
      process.stderr.write('Logged out\n');
    });
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
