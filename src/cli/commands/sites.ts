/** `zenith sites`: list, show, add, set, remove the sets of hosts replication goes between. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type { getSite, listSites } from '../../api/replication.js';
import { ApiClient } from '../client.js';
import { printJson, printKeyValues, printTable } from '../output.js';
import type { Globals } from './globals.js';

type Site = AnswerOf<typeof getSite>;

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerSites(program: Command): void {
  const sites = program
    .command('sites')
    .description('Sites: the named sets of hosts VMs are replicated between');
  sites
    .command('list', { isDefault: true })
    .description('List the sites and their hosts')
    .action(async (_o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const list = await ApiClient.fromConfig(globals).get<AnswerOf<typeof listSites>>('/sites');
      if (globals.json) return printJson(list);
      printTable(
        ['NAME', 'HOSTS', 'DESCRIPTION'],
        list.items.map((site) => [
          site.name,
          site.hosts.map((h) => h.name).join(', '),
          site.description,
        ]),
      );
    });
  sites
    .command('show <site>')
    .description('One site')
    .action(async (site: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const shown = await ApiClient.fromConfig(globals).get<Site>(
        `/sites/${encodeURIComponent(site)}`,
      );
      if (globals.json) return printJson(shown);
      printKeyValues([
        ['name', shown.name],
        ['id', shown.id],
        ['description', shown.description],
        ['hosts', shown.hosts.map((h) => h.name).join(', ') || null],
      ]);
    });
  sites
    .command('add <name>')
    .description('Make a site of hosts (a host belongs to one site at most)')
    .requiredOption('--host <host>', 'a host of the site (repeatable)', collect)
    .option('--description <text>', 'what the site is')
    .action(
      async (name: string, options: { host: string[]; description?: string }, command: Command) => {
        const globals = command.optsWithGlobals<Globals>();
        const made = await ApiClient.fromConfig(globals).post<Site>('/sites', {
          name,
          hosts: options.host,
          ...(options.description ? { description: options.description } : {}),
        });
        if (globals.json) return printJson(made);
        process.stderr.write(
          `site ${made.name} (${made.id}): ${made.hosts.map((h) => h.name).join(', ')}\n`,
        );
      },
    );
  sites
    .command('set <site>')
    .description("Change a site's hosts or description (only what is given)")
    .option('--host <host>', 'the site holds exactly these hosts (repeatable)', collect)
    .option('--description <text>', 'what the site is')
    .action(
      async (
        site: string,
        options: { host?: string[]; description?: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const changed = await ApiClient.fromConfig(globals).request<Site>(
          'PATCH',
          `/sites/${encodeURIComponent(site)}`,
          {
            ...(options.host ? { hosts: options.host } : {}),
            ...(options.description !== undefined ? { description: options.description } : {}),
          },
        );
        if (globals.json) return printJson(changed);
        process.stderr.write(`site ${changed.name} changed\n`);
      },
    );
  sites
    .command('remove <site>')
    .description('Forget a site (refused while a recovery plan names it)')
    .action(async (site: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request(
        'DELETE',
        `/sites/${encodeURIComponent(site)}`,
      );
      process.stderr.write(`removed site ${site}\n`);
    });
}
