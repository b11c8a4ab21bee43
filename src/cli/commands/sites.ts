/** `zenith sites`: list, show, add, set, remove the sets of hosts replication goes between. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type { getSite, listSites } from '../../api/replication.js';
import { ApiClient } from '../client.js';
import { printJson, printKeyValues } from '../output.js';
import { addListCommand, addShowCommand, collect, type Globals } from './globals.js';

type Site = AnswerOf<typeof getSite>;

const sitePath = (site: string) => `/sites/${encodeURIComponent(site)}`;
const hostNames = (site: Site) => site.hosts.map((h) => h.name).join(', ');

export function registerSites(program: Command): void {
  const sites = program
    .command('sites')
    .description('Sites: the named sets of hosts VMs are replicated between');
  addListCommand<AnswerOf<typeof listSites>>(sites, {
    description: 'List the sites and their hosts',
    path: '/sites',
    headers: ['NAME', 'HOSTS', 'DESCRIPTION'],
    row: (site) => [site.name, hostNames(site), site.description],
  });
  addShowCommand<Site>(sites, {
    usage: 'show <site>',
    description: 'One site',
    path: sitePath,
    print: (shown) =>
      printKeyValues([
        ['name', shown.name],
        ['id', shown.id],
        ['description', shown.description],
        ['hosts', hostNames(shown) || null],
      ]),
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
        process.stderr.write(`site ${made.name} (${made.id}): ${hostNames(made)}\n`);
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
        const changed = await ApiClient.fromConfig(globals).request<Site>('PATCH', sitePath(site), {
          ...(options.host ? { hosts: options.host } : {}),
          ...(options.description !== undefined ? { description: options.description } : {}),
        });
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
        sitePath(site),
      );
      process.stderr.write(`removed site ${site}\n`);
    });
}
