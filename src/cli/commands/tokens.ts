/** `zenith tokens`: API tokens and sessions — your own, or everyone's for administrators. */
import type { Command } from 'commander';
import type { listTokens } from '../../api/tokens.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { wholeNumber } from './parse-number.js';
import { addListCommand, printAnswer, type Globals } from './globals.js';

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('API tokens and sessions');
  addListCommand<AnswerOf<typeof listTokens>, { all?: boolean }>(tokens, {
    description: "Your tokens (--all: everyone's, administrators only)",
    path: (options) => `/tokens${options.all ? '?all=true' : ''}`,
    headers: ['ID', 'NAME', 'KIND', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED'],
    row: (t) => [
      t.id,
      t.name,
      t.kind,
      formatTime(t.createdAt),
      formatTime(t.expiresAt),
      formatTime(t.lastUsedAt),
      formatTime(t.revokedAt),
    ],
  }).option('--all', "every identity's tokens");
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
