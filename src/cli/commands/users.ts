/** `zenith users`: people and service identities, their roles, attributes and passwords. */
import type { Command } from 'commander';
import type { listUsers } from '../../api/users.js';
import type { AnswerOf } from '../../api/operation.js';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { readSecret } from '../prompt.js';
import { addListCommand, printAnswer, type Globals } from './globals.js';

export function registerUsers(program: Command): void {
  const users = program.command('users').description('People and service identities');
  addListCommand<AnswerOf<typeof listUsers>>(users, {
    description: 'List identities',
    path: '/users',
    headers: ['NAME', 'KIND', 'ROLE', 'DISABLED', 'CREATED', 'ID'],
    row: (u) => [u.name, u.kind, u.role, u.disabled ? 'yes' : '', formatTime(u.createdAt), u.id],
  });
  users
    .command('create <name>')
    .description(
      'Create a user (password prompted or from stdin) or, with --service, a service identity with a token',
    )
    .option(
      '--role <role>',
      'none, viewer, operator or admin (more through role bindings)',
      'viewer',
    )
    .option('--service', 'a service identity (answers its API token once)')
    .action(
      async (name: string, options: { role: string; service?: boolean }, command: Command) => {
        const globals = command.optsWithGlobals<Globals>();
        const body: Record<string, unknown> = {
          name,
          role: options.role,
          kind: options.service ? 'service' : 'user',
        };
        if (!options.service)
          body.password =
            process.env.ZENITH_NEW_PASSWORD ?? (await readSecret(`Password for ${name}: `));
        const created = await ApiClient.fromConfig(globals).post<{
          identity: { id: string; name: string };
          token?: string;
        }>('/users', body);
        if (globals.json) return printJson(created);
        process.stderr.write(`created ${created.identity.name} (${created.identity.id})\n`);
        if (created.token) process.stdout.write(`token (shown once): ${created.token}\n`);
      },
    );
  users
    .command('set-role <user> <role>')
    .description('Change a role')
    .action(async (user: string, role: string, _o: unknown, command: Command) =>
      printAnswer(command, 'PATCH', `/users/${encodeURIComponent(user)}`, { role }),
    );
  users
    .command('set-attributes <user> <attributes...>')
    .description(
      'Set facts about an identity that binding conditions read as subject.* (department=eng; name= removes one)',
    )
    .action(async (user: string, pairs: string[], _o: unknown, command: Command) => {
      const attributes: Record<string, string | null> = {};
      for (const pair of pairs) {
        const at = pair.indexOf('=');
        if (at < 1)
          throw new ZenithError('ZEN_BAD_REQUEST', `'${pair}' is not NAME=VALUE`, { pair });
        const value = pair.slice(at + 1);
        attributes[pair.slice(0, at)] = value === '' ? null : value;
      }
      await printAnswer(command, 'PATCH', `/users/${encodeURIComponent(user)}`, { attributes });
    });
  users
    .command('disable <user>')
    .description('Disable an identity (its tokens stop working)')
    .action(async (user: string, _o: unknown, command: Command) =>
      printAnswer(command, 'PATCH', `/users/${encodeURIComponent(user)}`, { disabled: true }),
    );
  users
    .command('delete <user>')
    .description('Delete an identity')
    .action(async (user: string, _o: unknown, command: Command) =>
      printAnswer(command, 'DELETE', `/users/${encodeURIComponent(user)}`),
    );
  users
    .command('passwd [user]')
    .description(
      "Set a password (yours by default, asking for the current one first); ends that user's other sessions and revokes their API tokens",
    )
    .action(async (user: string | undefined, _o: unknown, command: Command) => {
      const client = ApiClient.fromConfig(command.optsWithGlobals<Globals>());
      const me = await client.get<{ id: string; name: string }>('/auth/me');
      const own = user === undefined || [me.name, me.id, 'me'].includes(user);
      // Piped: the current password on the first line, the new one on the next.
      const currentPassword = own
        ? (process.env.ZENITH_CURRENT_PASSWORD ?? (await readSecret('Current password: ')))
        : undefined;
      const password = process.env.ZENITH_NEW_PASSWORD ?? (await readSecret('New password: '));
      await client.post(`/users/${encodeURIComponent(user ?? 'me')}/password`, {
        password,
        ...(currentPassword !== undefined ? { currentPassword } : {}),
      });
      process.stderr.write(
        own
          ? 'password changed; your other sessions ended and your API tokens were revoked\n'
          : 'password changed; their sessions ended and their API tokens were revoked\n',
      );
    });
}
