/**
 * `zenith hosts`: list the hosts, show one; their machines through BMCs (hosts-machine.ts);
 * maintenance (hosts-evacuate.ts, hosts-exit-maintenance.ts).
 */
import type { Command } from 'commander';
import { formatBytes } from '../output.js';
import { registerEvacuate } from './hosts-evacuate.js';
import { registerExitMaintenance } from './hosts-exit-maintenance.js';
import { registerMachineCommands } from './hosts-machine.js';
import { addListCommand, showObject, sim, type Globals } from './object-views.js';

export function registerHosts(program: Command): void {
  const hosts = program
    .command('hosts')
    .description('Hosts: hypervisor hosts and physical machines');
  addListCommand(hosts, {
    description: 'List hosts',
    path: '/hosts',
    headers: ['NAME', 'STATUS', 'MODE', 'TYPE', 'CPUS', 'MEMORY', 'VMS', 'RUNNING', 'ID'],
    row: (h) => [
      h.name + sim(h),
      h.status,
      (h.computed['host.mode'] as string | undefined) ?? 'normal',
      (h.facts['hypervisor.type'] as string | undefined) ??
        `bmc:${String(h.facts['bmc.protocol'] ?? '-')}`,
      h.facts['cpu.cores'] as number,
      formatBytes(h.facts['memory.totalBytes']),
      h.computed['vms.total'] as number,
      h.computed['vms.running'] as number,
      h.id,
    ],
  });
  hosts
    .command('show <host>')
    .description('One host by name or id')
    .action(async (host: string, _o: unknown, command: Command) =>
      showObject(command.optsWithGlobals<Globals>(), `/hosts/${encodeURIComponent(host)}`),
    );
  registerMachineCommands(hosts);
  registerEvacuate(hosts);
  registerExitMaintenance(hosts);
}
