/** `zenith vms snapshot`: list, create, revert and delete a VM's snapshots. */
import type { Command } from 'commander';
import type { listSnapshots } from '../../api/snapshots.js';
import type { AnswerOf } from '../../api/operation.js';
import { formatTime } from '../output.js';
import { runTask } from '../progress.js';
import type { Globals } from './object-views.js';
import { printList } from './globals.js';

export function registerSnapshots(vms: Command): void {
  const snapshots = vms.command('snapshot').description('Snapshots of a VM');
  snapshots
    .command('list <vm>', { isDefault: true })
    .description('List the snapshots of a VM')
    .action(async (vm: string, _o: unknown, command: Command) => {
      await printList<AnswerOf<typeof listSnapshots>>(
        command,
        `/vms/${encodeURIComponent(vm)}/snapshots`,
        ['NAME', 'TAKEN', 'POWER', 'ID'],
        (s) => [s.name, formatTime(s.createdAt), s.powerState, s.id],
      );
    });
  snapshots
    .command('create <vm> <name>')
    .description('Take a snapshot and wait for the task')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (vm: string, name: string, options: { wait: boolean }, command: Command) =>
      runTask(
        command.optsWithGlobals<Globals>(),
        'POST',
        `/vms/${encodeURIComponent(vm)}/snapshots`,
        { name },
        options.wait,
      ),
    );
  snapshots
    .command('revert <vm> <snapshot>')
    .description('Revert to a snapshot (name or id)')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (vm: string, snapshot: string, options: { wait: boolean }, command: Command) =>
      runTask(
        command.optsWithGlobals<Globals>(),
        'POST',
        `/vms/${encodeURIComponent(vm)}/snapshots/${encodeURIComponent(snapshot)}/revert`,
        {},
        options.wait,
      ),
    );
  snapshots
    .command('delete <vm> <snapshot>')
    .description('Delete a snapshot (name or id)')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (vm: string, snapshot: string, options: { wait: boolean }, command: Command) =>
      runTask(
        command.optsWithGlobals<Globals>(),
        'DELETE',
        `/vms/${encodeURIComponent(vm)}/snapshots/${encodeURIComponent(snapshot)}`,
        undefined,
        options.wait,
      ),
    );
}
