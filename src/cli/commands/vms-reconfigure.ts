/** `zenith vms reconfigure VM [--cpus N] [--memory SIZE]`, as a task. */
import type { Command } from 'commander';
import { parseSize } from './parse-size.js';
import { runTask } from '../progress.js';
import { wholeNumber } from './parse-number.js';
import type { Globals } from './globals.js';

export function registerReconfigure(vms: Command): void {
  vms
    .command('reconfigure <vm>')
    .description('Change the CPU count and/or memory of a VM and wait for the task')
    .option('--cpus <n>', 'virtual CPUs')
    .option('--memory <size>', 'memory, e.g. 512MiB or 2GiB')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(
      async (
        vm: string,
        options: { cpus?: string; memory?: string; wait: boolean },
        command: Command,
      ) =>
        runTask(
          command.optsWithGlobals<Globals>(),
          'POST',
          `/vms/${encodeURIComponent(vm)}/reconfigure`,
          {
            ...(options.cpus ? { cpus: wholeNumber(options.cpus, '--cpus') } : {}),
            ...(options.memory ? { memoryBytes: parseSize(options.memory) } : {}),
          },
          options.wait,
        ),
    );
}
