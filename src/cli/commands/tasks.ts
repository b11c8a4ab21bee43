/** `zenith tasks`: long actions and their progress. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type { listTasks } from '../../api/tasks.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { waitForTask } from '../progress.js';
import { printList, type Globals } from './globals.js';

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('Tasks: long actions and their progress');
  tasks
    .command('list', { isDefault: true })
    .description('Recent tasks, newest first')
    .option('--state <state>', 'queued, running, succeeded, failed or cancelled')
    .option('--limit <n>', 'how many', '20')
    .action(async (options: { state?: string; limit: string }, command: Command) => {
      const query = new URLSearchParams({
        limit: options.limit,
        ...(options.state ? { state: options.state } : {}),
      });
      await printList<AnswerOf<typeof listTasks>>(
        command,
        `/tasks?${query.toString()}`,
        ['ID', 'KIND', 'TARGET', 'STATE', 'PROGRESS', 'CREATED', 'ERROR'],
        (t) => [
          t.id,
          t.kind,
          (t.params.vmName as string | undefined) ?? t.targetId,
          t.state,
          `${t.progress}%`,
          formatTime(t.createdAt),
          t.error ? `${t.error.code}: ${t.error.message}` : null,
        ],
      );
    });
  tasks
    .command('show <id>')
    .description('One task')
    .action(async (id: string, _o: unknown, command: Command) =>
      printJson(
        await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).get(
          `/tasks/${encodeURIComponent(id)}`,
        ),
      ),
    );
  tasks
    .command('wait <id>')
    .description('Wait for a task to finish, with a progress bar')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const done = await waitForTask(ApiClient.fromConfig(globals), id, {
        quiet: globals.json === true,
      });
      if (globals.json) printJson(done);
    });
  tasks
    .command('cancel <id>')
    .description('Cancel a queued or running task')
    .action(async (id: string, _o: unknown, command: Command) =>
      printJson(
        await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).post(
          `/tasks/${encodeURIComponent(id)}/cancel`,
        ),
      ),
    );
}
