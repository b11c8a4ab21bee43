/** `zenith hosts`: list the physical hosts, show one. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { formatBytes, printJson, printTable } from '../output.js';
import {
  addListOptions,
  listQuery,
  showObject,
  sim,
  type Globals,
  type ListOptions,
  type ObjectView,
} from './object-views.js';

export function registerHosts(program: Command): void {
  const hosts = program.command('hosts').description('Physical hosts');
  addListOptions(hosts.command('list', { isDefault: true }).description('List hosts')).action(
    async (options: ListOptions, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const page = await ApiClient.fromConfig(globals).get<{
        items: ObjectView[];
        nextCursor: string | null;
      }>(`/hosts${listQuery(options)}`);
      if (globals.json) return printJson(page);
      printTable(
        ['NAME', 'STATUS', 'MODE', 'TYPE', 'CPUS', 'MEMORY', 'VMS', 'RUNNING', 'ID'],
        page.items.map((h) => [
          h.name + sim(h),
          h.status,
          (h.computed['host.mode'] as string | undefined) ?? 'normal',
          h.facts['hypervisor.type'] as string,
          h.facts['cpu.cores'] as number,
          formatBytes(h.facts['memory.totalBytes']),
          h.computed['vms.total'] as number,
          h.computed['vms.running'] as number,
          h.id,
        ]),
      );
      if (page.nextCursor) process.stderr.write(`more: --cursor ${page.nextCursor}\n`);
    },
  );
  hosts
    .command('show <host>')
    .description('One host by name or id')
    .action(async (host: string, _o: unknown, command: Command) =>
      showObject(command.optsWithGlobals<Globals>(), `/hosts/${encodeURIComponent(host)}`),
    );
}
