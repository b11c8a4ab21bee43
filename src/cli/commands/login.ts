/** `zenith login`: log in and remember the session for later commands. */
import type { Command } from 'commander';
import { ApiClient, readConfig, writeConfig } from '../client.js';
import { readSecret } from '../prompt.js';

export function registerLogin(program: Command): void {
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
}
