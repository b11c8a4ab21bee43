/** `zenith groups`: groups of users, service identities and groups. */
import type { Command } from 'commander';
import type { GroupView } from '../../api/access.js';
import { printJson, printKeyValues } from '../output.js';
import { clientOf, printList } from './globals.js';

function printGroup(group: GroupView): void {
  printKeyValues([
    ['id', group.id],
    ['name', group.name],
    ['members', group.members.map((m) => `${m.name} (${m.kind})`).join(', ') || '-'],
  ]);
}

export function registerGroups(program: Command): void {
  const groups = program
    .command('groups')
    .description('Groups of users, service identities and groups');
  groups.command('list', { isDefault: true }).action(async (_o, command: Command) => {
    await printList<{ items: GroupView[] }>(command, '/groups', ['ID', 'NAME', 'MEMBERS'], (g) => [
      g.id,
      g.name,
      g.members.map((m) => m.name).join(', '),
    ]);
  });
  groups
    .command('create <name>')
    .option('--description <text>')
    .action(async (name: string, options: { description?: string }, command: Command) => {
      const { api, json } = clientOf(command);
      const group = await api.post<GroupView>('/groups', { name, ...options });
      if (json) return printJson(group);
      printGroup(group);
    });
  groups.command('delete <group>').action(async (group: string, _o, command: Command) => {
    const { api, json } = clientOf(command);
    const deleted = await api.request<GroupView>('DELETE', `/groups/${encodeURIComponent(group)}`);
    if (json) return printJson(deleted);
    console.log(`deleted group ${deleted.name}`);
  });
  groups
    .command('add <group> <member>')
    .description('Add a user, service identity or group to a group')
    .action(async (group: string, member: string, _o, command: Command) => {
      const { api, json } = clientOf(command);
      const updated = await api.post<GroupView>(`/groups/${encodeURIComponent(group)}/members`, {
        member,
      });
      if (json) return printJson(updated);
      printGroup(updated);
    });
  groups
    .command('remove <group> <member>')
    .action(async (group: string, member: string, _o, command: Command) => {
      const { api, json } = clientOf(command);
      const updated = await api.request<GroupView>(
        'DELETE',
        `/groups/${encodeURIComponent(group)}/members/${encodeURIComponent(member)}`,
      );
      if (json) return printJson(updated);
      printGroup(updated);
    });
}
