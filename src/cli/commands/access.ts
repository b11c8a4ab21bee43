/** access explain, groups, roles, role bindings */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { registerAccessReport } from './access-report.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';

interface Globals {
  json?: boolean;
  server?: string;
}

interface Group {
  id: string;
  name: string;
  description: string | null;
  members: Array<{ id: string; kind: string; name: string }>;
}
interface Role {
  name: string;
  permissions: string[];
  predefined: boolean;
}
interface Binding {
  id: string;
  subjectId: string;
  subjectKind: string;
  role: string;
  scopeId: string | null;
  condition?: string | null;
  createdAt: number;
}
interface Decision {
  allowed: boolean;
  permission: string;
  objectId: string | null;
  binding: Binding | null;
  via: string[];
  reason: string;
  conditions: Array<{ bindingId: string; condition: string; held: boolean; error?: string }>;
}

const client = (command: Command) => {
  const globals = command.optsWithGlobals<Globals>();
  return { api: ApiClient.fromConfig(globals), json: globals.json === true };
};
const path = (value: string) => encodeURIComponent(value);

function printGroup(group: Group): void {
  printKeyValues([
    ['id', group.id],
    ['name', group.name],
    ['members', group.members.map((m) => `${m.name} (${m.kind})`).join(', ') || '-'],
  ]);
}

export function registerAccess(program: Command): void {
  const access = program.command('access').description('Who may do what where');
  access
    .command('explain <identity> <permission> [object]')
    .description(
      'Would IDENTITY be allowed PERMISSION on OBJECT (everywhere when absent)? Names the binding that allows, or why nothing does',
    )
    .action(
      async (
        identity: string,
        permission: string,
        object: string | undefined,
        _o,
        command: Command,
      ) => {
        const { api, json } = client(command);
        const query = new URLSearchParams({ identity, permission, ...(object ? { object } : {}) });
        const decision = await api.get<Decision>(`/access/explain?${query.toString()}`);
        if (json) return printJson(decision);
        printKeyValues([
          ['decision', decision.allowed ? 'ALLOWED' : 'DENIED'],
          ['reason', decision.reason],
          ...(decision.binding
            ? ([
                ['binding', decision.binding.id],
                ['role', decision.binding.role],
                ['scope', decision.binding.scopeId ?? 'everything'],
              ] as Array<[string, unknown]>)
            : []),
          ...(decision.via.length > 0
            ? ([['through groups', decision.via.join(' → ')]] as Array<[string, unknown]>)
            : []),
          ...decision.conditions.map((c): [string, unknown] => [
            `condition of ${c.bindingId}`,
            `${c.condition} → ${c.held ? 'held' : 'did not hold'}${c.error ? ` (${c.error})` : ''}`,
          ]),
        ]);
        if (!decision.allowed) process.exitCode = 1;
      },
    );
  registerAccessReport(access);

  const groups = program
    .command('groups')
    .description('Groups of users, service identities and groups');
  groups.command('list', { isDefault: true }).action(async (_o, command: Command) => {
    const { api, json } = client(command);
    const page = await api.get<{ items: Group[] }>('/groups');
    if (json) return printJson(page);
    printTable(
      ['ID', 'NAME', 'MEMBERS'],
      page.items.map((g) => [g.id, g.name, g.members.map((m) => m.name).join(', ')]),
    );
  });
  groups
    .command('create <name>')
    .option('--description <text>')
    .action(async (name: string, options: { description?: string }, command: Command) => {
      const { api, json } = client(command);
      const group = await api.post<Group>('/groups', { name, ...options });
      if (json) return printJson(group);
      printGroup(group);
    });
  groups.command('delete <group>').action(async (group: string, _o, command: Command) => {
    const { api, json } = client(command);
    const deleted = await api.request<Group>('DELETE', `/groups/${path(group)}`);
    if (json) return printJson(deleted);
    console.log(`deleted group ${deleted.name}`);
  });
  groups
    .command('add <group> <member>')
    .description('Add a user, service identity or group to a group')
    .action(async (group: string, member: string, _o, command: Command) => {
      const { api, json } = client(command);
      const updated = await api.post<Group>(`/groups/${path(group)}/members`, { member });
      if (json) return printJson(updated);
      printGroup(updated);
    });
  groups
    .command('remove <group> <member>')
    .action(async (group: string, member: string, _o, command: Command) => {
      const { api, json } = client(command);
      const updated = await api.request<Group>(
        'DELETE',
        `/groups/${path(group)}/members/${path(member)}`,
      );
      if (json) return printJson(updated);
      printGroup(updated);
    });

  const roles = program.command('roles').description('Predefined and custom roles');
  roles.command('list', { isDefault: true }).action(async (_o, command: Command) => {
    const { api, json } = client(command);
    const page = await api.get<{ items: Role[] }>('/roles');
    if (json) return printJson(page);
    printTable(
      ['NAME', 'KIND', 'PERMISSIONS'],
      page.items.map((r) => [
        r.name,
        r.predefined ? 'predefined' : 'custom',
        r.permissions.join(' '),
      ]),
    );
  });
  roles
    .command('create <name> <permissions...>')
    .description('A custom role granting the given permissions (e.g. vm.read vm.power)')
    .action(async (name: string, permissions: string[], _o, command: Command) => {
      const { api, json } = client(command);
      const role = await api.post<Role>('/roles', { name, permissions });
      if (json) return printJson(role);
      console.log(`role ${role.name}: ${role.permissions.join(' ')}`);
    });
  roles.command('delete <name>').action(async (name: string, _o, command: Command) => {
    const { api, json } = client(command);
    const role = await api.request<Role>('DELETE', `/roles/${path(name)}`);
    if (json) return printJson(role);
    console.log(`deleted role ${role.name}`);
  });

  const bindings = program.command('bindings').description('Role bindings: subject → role → scope');
  bindings
    .command('list', { isDefault: true })
    .option('--subject <subject>', 'only this user, service identity or group')
    .option('--scope <object>', 'only bindings on this object')
    .action(async (options: { subject?: string; scope?: string }, command: Command) => {
      const { api, json } = client(command);
      const query = new URLSearchParams(options as Record<string, string>);
      const page = await api.get<{ items: Binding[] }>(`/role-bindings?${query.toString()}`);
      if (json) return printJson(page);
      printTable(
        ['ID', 'SUBJECT', 'ROLE', 'SCOPE', 'CONDITION', 'CREATED'],
        page.items.map((b) => [
          b.id,
          `${b.subjectId} (${b.subjectKind})`,
          b.role,
          b.scopeId ?? 'everything',
          b.condition ?? '-',
          formatTime(b.createdAt),
        ]),
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
        const { api, json } = client(command);
        const binding = await api.post<Binding>('/role-bindings', {
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
    const { api, json } = client(command);
    const binding = await api.request<Binding>('DELETE', `/role-bindings/${path(id)}`);
    if (json) return printJson(binding);
    console.log(`deleted ${binding.id}`);
  });
}
