/** zenith resource-groups: groups of objects for scoping access (children, listed members, a selector). */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { printJson, printKeyValues, printTable } from '../output.js';
import type { Globals } from './globals.js';

interface GroupObject {
  id: string;
  name: string;
  kind: string;
  parentId: string | null;
  userFacts: Record<string, unknown>;
}

const client = (command: Command) => {
  const globals = command.optsWithGlobals<Globals>();
  return { api: ApiClient.fromConfig(globals), json: globals.json === true };
};
const path = (value: string) => encodeURIComponent(value);
const membersOf = (group: GroupObject) =>
  Array.isArray(group.userFacts['user.members'])
    ? (group.userFacts['user.members'] as string[])
    : [];
const selectorOf = (group: GroupObject) =>
  typeof group.userFacts['user.selector'] === 'string' ? group.userFacts['user.selector'] : '';

export function registerResourceGroups(program: Command): void {
  const groups = program
    .command('resource-groups')
    .description(
      'Resource groups: what bindings on them reach (their children, listed members and selector)',
    );
  groups
    .command('list', { isDefault: true })
    .description('Every resource group with its selector and how many members it lists')
    .action(async (_o, command: Command) => {
      const { api, json } = client(command);
      const page = await api.get<{ items: GroupObject[] }>('/resource-groups?limit=1000');
      if (json) return printJson(page);
      printTable(
        ['NAME', 'ID', 'SELECTOR', 'MEMBERS'],
        page.items.map((g) => [g.name, g.id, selectorOf(g), String(membersOf(g).length)]),
      );
    });
  groups
    .command('create <name>')
    .description('Create a resource group (under --parent, picking objects by --selector)')
    .option('--parent <object>', 'the object it sits under (its scope includes its children)')
    .option('--selector <terms>', "list filter terms that pick objects, e.g. 'tags=env:prod'")
    .action(
      async (name: string, options: { parent?: string; selector?: string }, command: Command) => {
        const { api, json } = client(command);
        const group = await api.post<GroupObject>('/resource-groups', {
          name,
          ...(options.parent ? { parentId: options.parent } : {}),
          ...(options.selector ? { facts: { 'user.selector': options.selector } } : {}),
        });
        if (json) return printJson(group);
        console.log(`created resource group ${group.name} (${group.id})`);
      },
    );
  groups
    .command('show <group>')
    .description('A resource group: its selector and the objects it lists')
    .action(async (group: string, _o, command: Command) => {
      const { api, json } = client(command);
      const found = await api.get<GroupObject>(`/resource-groups/${path(group)}`);
      if (json) return printJson(found);
      printKeyValues([
        ['name', found.name],
        ['id', found.id],
        ['selector', selectorOf(found) || '—'],
      ]);
      const members = membersOf(found);
      if (members.length === 0) return console.log('\nno listed members');
      const named = await Promise.all(
        members.map(async (id) => {
          try {
            const object = await api.get<GroupObject>(`/objects/${path(id)}`);
            return [object.name, object.kind, id];
          } catch {
            return ['(not visible or gone)', '', id];
          }
        }),
      );
      console.log('');
      printTable(['MEMBER', 'KIND', 'ID'], named);
    });
  groups
    .command('add <group> <object>')
    .description('List an object as a member (needs identity.manage on the group)')
    .action(async (group: string, object: string, _o, command: Command) => {
      const { api, json } = client(command);
      const updated = await api.post<GroupObject>(`/resource-groups/${path(group)}/members`, {
        object,
      });
      if (json) return printJson(updated);
      console.log(`${object} is a member of ${updated.name} (${membersOf(updated).length} listed)`);
    });
  groups
    .command('remove <group> <object>')
    .description('Take an object off the member list')
    .action(async (group: string, object: string, _o, command: Command) => {
      const { api, json } = client(command);
      const updated = await api.request<GroupObject>(
        'DELETE',
        `/resource-groups/${path(group)}/members/${path(object)}`,
      );
      if (json) return printJson(updated);
      console.log(`${object} is no longer a member of ${updated.name}`);
    });
}
