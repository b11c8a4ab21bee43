/** Commands that queue a task and wait for it. */
import type { Command } from 'commander';
import { runTask } from '../progress.js';
import type { Globals } from './globals.js';

/** The request that queues a command's task. */
export interface TaskRequest {
  method: 'POST' | 'DELETE';
  path: string;
  body?: unknown;
}

/**
 * A subcommand that queues a task and, unless --no-wait, waits for it with a progress bar.
 * `request` takes the command's arguments, as `usage` declares them.
 */
export function addTaskCommand(
  group: Command,
  usage: string,
  description: string,
  request: (...args: string[]) => TaskRequest,
): Command {
  return group
    .command(usage)
    .description(description)
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      const { method, path, body } = request(...(command.processedArgs as string[]));
      const { wait } = command.opts<{ wait: boolean }>();
      await runTask(command.optsWithGlobals<Globals>(), method, path, body, wait);
    });
}
