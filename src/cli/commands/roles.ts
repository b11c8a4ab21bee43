/** `zenith roles`: predefined and custom roles. */
import type { Command } from 'commander';
import type { RoleView } from '../../api/access.js';
import { printJson } from '../output.js';
import { clientOf, printList } from './globals.js';

export function registerRoles(program: Command): void {
  const roles = program.command('roles').description('Predefined and custom roles');
  roles.command('list', { isDefault: true }).action(async (_o, command: Command) => {
    await printList<{ items: RoleView[] }>(
      command,
      '/roles',
      ['NAME', 'KIND', 'PERMISSIONS'],
      (r) => [r.name, r.predefined ? 'predefined' : 'custom', r.permissions.join(' ')],
    );
  });
  roles
    .command('create <name> <permissions...>')
    .description('A custom role granting the given permissions (e.g. vm.read vm.power)')
    .action(async (name: string, permissions: string[], _o, command: Command) => {
      const { api, json } = clientOf(command);
      const role = await api.post<RoleView>('/roles', { name, permissions });
      if (json) return printJson(role);
      console.log(`role ${role.name}: ${role.permissions.join(' ')}`);
    });
  roles.command('delete <name>').action(async (name: string, _o, command: Command) => {
    const { api, json } = clientOf(command);
    const role = await api.request<RoleView>('DELETE', `/roles/${encodeURIComponent(name)}`);
    if (json) return printJson(role);
    console.log(`deleted role ${role.name}`);
  });
}
