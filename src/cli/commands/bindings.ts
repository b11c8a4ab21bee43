/** `zenith bindings`: role bindings — subject → role → scope, with an optional condition. */
import type { Command } from 'commander';
import type { BindingView } from '../../api/access.js';
import { formatTime, printJson } from '../output.js';
import { clientOf, printList } from './globals.js';

export function registerBindings(program: Command): void {
  const bindings = program.command('bindings').description('Role bindings: subject → role → scope');
  bindings
    .command('list', { isDefault: true })
    .option('--subject <subject>', 'only this user, service identity or group')
    .option('--scope <object>', 'only bindings on this object')
    .action(async (options: { subject?: string; scope?: string }, command: Command) => {
      const query = new URLSearchParams(options as Record<string, string>);
      await printList<{ items: BindingView[] }>(
        command,
        `/role-bindings?${query.toString()}`,
        ['ID', 'SUBJECT', 'ROLE', 'SCOPE', 'CONDITION', 'CREATED'],
        (b) => [
          b.id,
          `${b.subjectId} (${b.subjectKind})`,
          b.role,
          b.scopeId ?? 'everything',
          b.condition ?? '-',
          formatTime(b.createdAt),
        ],
      );
    });
  bindings
    .command('create <subject> <role> [scope]')
    .description(
      'Give SUBJECT the ROLE on SCOPE (an object and its subtree; everything when absent)',
    )
    .option(
      '--when <condition>',
      "only where this holds, over subject.* and object.* facts (e.g. 'subject.department == object.user.costCenter')",
    )
    .action(
      async (
        subject: string,
        role: string,
        scope: string | undefined,
        options: { when?: string },
        command: Command,
      ) => {
        const { api, json } = clientOf(command);
        const binding = await api.post<BindingView>('/role-bindings', {
          subject,
          role,
          ...(scope ? { scope } : {}),
          ...(options.when ? { condition: options.when } : {}),
        });
        if (json) return printJson(binding);
        console.log(
          `${binding.id}: ${subject} is ${binding.role} on ${binding.scopeId ?? 'everything'}${binding.condition ? ` where ${binding.condition}` : ''}`,
        );
      },
    );
  bindings.command('delete <id>').action(async (id: string, _o, command: Command) => {
    const { api, json } = clientOf(command);
    const binding = await api.request<BindingView>(
      'DELETE',
      `/role-bindings/${encodeURIComponent(id)}`,
    );
    if (json) return printJson(binding);
    console.log(`deleted ${binding.id}`);
  });
}
