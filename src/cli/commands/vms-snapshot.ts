/** `zenith vms snapshot`: list, create, revert and delete a VM's snapshots. */
import type { Command } from 'commander';
import type { listSnapshots } from '../../api/snapshots.js';
import type { AnswerOf } from '../../api/operation.js';
import { formatTime } from '../output.js';
import { printList } from './globals.js';
import { addTaskCommand } from './task-command.js';

const snapshotsPath = (vm: string) => `/vms/${encodeURIComponent(vm)}/snapshots`;

export function registerSnapshots(vms: Command): void {
  const snapshots = vms.command('snapshot').description('Snapshots of a VM');
  snapshots
    .command('list <vm>', { isDefault: true })
    .description('List the snapshots of a VM')
    .action(async (vm: string, _o: unknown, command: Command) => {
      await printList<AnswerOf<typeof listSnapshots>>(
        command,
        snapshotsPath(vm),
        ['NAME', 'TAKEN', 'POWER', 'ID'],
        (s) => [s.name, formatTime(s.createdAt), s.powerState, s.id],
      );
    });
  addTaskCommand(
    snapshots,
    'create <vm> <name>',
    'Take a snapshot and wait for the task',
    (vm, name) => ({
      method: 'POST',
      path: snapshotsPath(vm),
      body: { name },
    }),
  );
  addTaskCommand(
    snapshots,
    'revert <vm> <snapshot>',
    'Revert to a snapshot (name or id)',
    (vm, snapshot) => ({
      method: 'POST',
      path: `${snapshotsPath(vm)}/${encodeURIComponent(snapshot)}/revert`,
    }),
  );
  addTaskCommand(
    snapshots,
    'delete <vm> <snapshot>',
    'Delete a snapshot (name or id)',
    (vm, snapshot) => ({
      method: 'DELETE',
      path: `${snapshotsPath(vm)}/${encodeURIComponent(snapshot)}`,
    }),
  );
}
