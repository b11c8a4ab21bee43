/**
 * What the hosts and vms commands share: the object the API answers, the list options (fact
 * filters, tags, sort, pages) and how one object is shown.
 */
import type { Command } from 'commander';
import type { ManagedObjectView } from '../../api/inventory.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { collect, type Globals } from './globals.js';

/** An object as the API answers it (the contract's ManagedObjectView). */
export type ObjectView = ManagedObjectView;

// hosts, vms and their subcommands read these from here too (they are globals.ts's).
export { collect, type Globals };

export interface ListOptions {
  filter?: string[];
  tag?: string[];
  sort?: string;
  limit?: string;
  cursor?: string;
}

export function listQuery(options: ListOptions): string {
  const params = new URLSearchParams();
  for (const f of options.filter ?? []) params.append('filter', f);
  for (const t of options.tag ?? []) params.append('tag', t);
  if (options.sort) params.set('sort', options.sort);
  if (options.limit) params.set('limit', options.limit);
  if (options.cursor) params.set('cursor', options.cursor);
  const text = params.toString();
  return text ? `?${text}` : '';
}

export function addListOptions(command: Command): Command {
  return command
    .option(
      '-f, --filter <KEY OP VALUE>',
      'fact filter, repeatable: power.state=running, cpu.count>=4, name~web, !user.owner',
      collect,
    )
    .option('-t, --tag <tag>', 'only objects with this tag, repeatable', collect)
    .option('--sort <key>', "sort by name or a fact; prefix '-' for descending")
    .option('--limit <n>', 'page size (1–1000)', '100')
    .option('--cursor <cursor>', 'continue after a previous page');
}

export function sim(object: ObjectView): string {
  return object.simulated ? ' (simulated)' : '';
}

export async function showObject(globals: Globals, path: string): Promise<void> {
  const object = await ApiClient.fromConfig(globals).get<ObjectView>(path);
  if (globals.json) return printJson(object);
  printKeyValues([
    ['name', object.name + sim(object)],
    ['id', object.id],
    ['kind', object.kind],
    ['status', object.status],
    ['tags', object.tags.join(' ') || '-'],
    ['parent', object.parentId],
    ['connection', object.connectionId],
    ['updated', formatTime(object.updatedAt)],
  ]);
  const facts = [
    ...Object.entries(object.facts),
    ...Object.entries(object.computed),
    ...Object.entries(object.userFacts),
  ].sort(([a], [b]) => a.localeCompare(b));
  process.stdout.write('\nfacts:\n');
  for (const [key, value] of facts) process.stdout.write(`  ${key} = ${JSON.stringify(value)}\n`);
}

/** A `list` subcommand (the default one) of a noun: one page of its objects as a table. */
export function addListCommand(
  noun: Command,
  list: {
    description: string;
    path: string;
    headers: string[];
    row: (object: ObjectView) => Array<string | number | null | undefined>;
  },
): void {
  addListOptions(noun.command('list', { isDefault: true }).description(list.description)).action(
    async (options: ListOptions, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const page = await ApiClient.fromConfig(globals).get<{
        items: ObjectView[];
        nextCursor: string | null;
      }>(`${list.path}${listQuery(options)}`);
      if (globals.json) return printJson(page);
      printTable(list.headers, page.items.map(list.row));
      if (page.nextCursor) process.stderr.write(`more: --cursor ${page.nextCursor}\n`);
    },
  );
}
