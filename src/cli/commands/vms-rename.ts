/** `zenith vms rename VM NEW-NAME`, as a task. */
import type { Command } from 'commander';
import { runTask } from '../progress.js';
import type { Globals } from './globals.js';

export function registerRename(vms: Command): void {
  vms
    .command('rename <vm> <new-name>')
    .description('Rename a VM on its hypervisor and wait for the task')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (vm: string, name: string, options: { wait: boolean }, command: Command) =>
      runTask(
        command.optsWithGlobals<Globals>(),
        'POST',
        `/vms/${encodeURIComponent(vm)}/rename`,
        { name },
        options.wait,
      ),
    );
}
