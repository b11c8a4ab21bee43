/** `zenith tokens`: API tokens and sessions — your own, or everyone's for administrators. */
import type { Command } from 'commander';
import type { listTokens } from '../../api/tokens.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { wholeNumber } from './parse-number.js';
import { printList, printAnswer, type Globals } from './globals.js';

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('API tokens and sessions');
  tokens
    .command('list', { isDefault: true })
    .description("Your tokens (--all: everyone's, administrators only)")
    .option('--all', "every identity's tokens")
    .action(async (options: { all?: boolean }, command: Command) => {
      await printList<AnswerOf<typeof listTokens>>(
        command,
        `/tokens${options.all ? '?all=true' : ''}`,
        ['ID', 'NAME', 'KIND', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED'],
        (t) => [
          t.id,
          t.name,
          t.kind,
          formatTime(t.createdAt),
          formatTime(t.expiresAt),
          formatTime(t.lastUsedAt),
          formatTime(t.revokedAt),
        ],
      );
    });
  tokens
    .command('create <name>')
    .description('Create an API token for yourself (the secret is shown once)')
    .option('--expires-in-days <n>', 'expiry')
    .action(async (name: string, options: { expiresInDays?: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const created = await ApiClient.fromConfig(globals).post<{
        token: string;
        info: { id: string };
      }>('/tokens', {
        name,
        ...(options.expiresInDays
          ? { expiresInDays: wholeNumber(options.expiresInDays, '--expires-in-days') }
          : {}),
      });
      if (globals.json) return printJson(created);
      process.stdout.write(`${created.token}\n`);
      process.stderr.write(
        `token ${created.info.id} created; the secret above is shown only once\n`,
      );
    });
  tokens
    .command('revoke <id>')
    .description('Revoke a token at once')
    .action(async (id: string, _o: unknown, command: Command) =>
      printAnswer(command, 'DELETE', `/tokens/${encodeURIComponent(id)}`),
    );
}
