/** `zenith vms clone VM NEW-NAME [--linked]`: a copy of a stopped VM, as a task. */
import type { Command } from 'commander';
import { runTask } from '../progress.js';

export function registerClone(vms: Command): void {
  vms
    .command('clone <vm> <new-name>')
    .description('Clone a stopped VM under a new name and wait for the task')
    .option(
      '--linked',
      'share the disks copy-on-write instead of copying them (QEMU: the source then stays stopped and cannot be deleted while the clone exists)',
    )
    .option(
      '--group <group>',
      'the group the clone belongs to and whose quotas it counts against (default: your only group)',
    )
    .option('--wait', 'wait for the task, with a progress bar (the default)')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        vm: string,
        name: string,
        options: { linked?: boolean; group?: string; wait?: boolean },
        command: Command,
      ) =>
        runTask(
          command.optsWithGlobals<{ json?: boolean; server?: string }>(),
          'POST',
          `/vms/${encodeURIComponent(vm)}/clone`,
          {
            name,
            ...(options.linked ? { linked: true } : {}),
            ...(options.group ? { group: options.group } : {}),
          },
          options.wait !== false,
        ),
    );
}
