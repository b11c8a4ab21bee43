/** `zenith tasks`: long actions and their progress. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type { listTasks } from '../../api/tasks.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import { waitForTask } from '../progress.js';
import {
  addListCommand,
  printAnswer,
  stateAndLimitQuery,
  type Globals,
  type StateAndLimit,
} from './globals.js';

const taskPath = (id: string) => `/tasks/${encodeURIComponent(id)}`;

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('Tasks: long actions and their progress');
  addListCommand<AnswerOf<typeof listTasks>, StateAndLimit>(tasks, {
    description: 'Recent tasks, newest first',
    path: (options) => `/tasks?${stateAndLimitQuery(options)}`,
    headers: ['ID', 'KIND', 'TARGET', 'STATE', 'PROGRESS', 'CREATED', 'ERROR'],
    row: (t) => [
      t.id,
      t.kind,
      (t.params.vmName as string | undefined) ?? t.targetId,
      t.state,
      `${t.progress}%`,
      formatTime(t.createdAt),
      t.error ? `${t.error.code}: ${t.error.message}` : null,
    ],
  })
    .option('--state <state>', 'queued, running, succeeded, failed or cancelled')
    .option('--limit <n>', 'how many', '20');
  tasks
    .command('show <id>')
    .description('One task')
    .action(async (id: string, _o: unknown, command: Command) =>
      printAnswer(command, 'GET', taskPath(id)),
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
      printAnswer(command, 'POST', `${taskPath(id)}/cancel`, {}),
    );
}
