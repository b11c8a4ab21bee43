/** `zenith vms rename VM NEW-NAME`, as a task. */
import type { Command } from 'commander';
import { addTaskCommand } from './task-command.js';

export function registerRename(vms: Command): void {
  addTaskCommand(
    vms,
    'rename <vm> <new-name>',
    'Rename a VM on its hypervisor and wait for the task',
    (vm, name) => ({
      method: 'POST',
      path: `/vms/${encodeURIComponent(vm)}/rename`,
      body: { name },
    }),
  );
}
