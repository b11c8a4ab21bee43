/** `zenith plans`: migration plans — rebalancing, evacuations, given moves. */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson } from '../output.js';
import type { TaskSummary } from '../progress.js';
import {
  addListCommand,
  addShowCommand,
  collect,
  stateAndLimitQuery,
  type Globals,
  type StateAndLimit,
} from './globals.js';
import { printPlan, seconds, waitAndReport, type Plan } from './plan-views.js';

const planPath = (id: string) => `/placement/plans/${encodeURIComponent(id)}`;

export function registerPlans(program: Command): void {
  const plans = program
    .command('plans')
    .description('Migration plans: rebalancing, evacuations, given moves');
  addListCommand<{ items: Plan[] }, StateAndLimit>(plans, {
    description: 'Plans, newest first',
    path: (options) => `/placement/plans?${stateAndLimitQuery(options)}`,
    headers: ['ID', 'KIND', 'STATE', 'MOVES', 'PREDICTED', 'ACTUAL', 'CREATED'],
    row: (p) => [
      p.id,
      p.kind,
      p.state,
      p.moves.length,
      seconds(p.predictedCompletionMs),
      p.outcome ? seconds(p.outcome.actualCompletionMs) : null,
      formatTime(p.createdAt),
    ],
  })
    .option('--state <state>', 'proposed, applying, applied, failed or discarded')
    .option('--limit <n>', 'how many', '20');
  addShowCommand<Plan>(plans, {
    usage: 'show <id>',
    description: 'One plan: its moves in order with predicted times, and its outcome once applied',
    path: planPath,
    print: printPlan,
  });
  plans
    .command('create')
    .description(
      'Schedule given moves, e.g. --move web-1=host-b --move db-2=host-c (ordered to stay feasible)',
    )
    .requiredOption('--move <vm=host>', 'a move, repeatable', collect)
    .action(async (options: { move: string[] }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const moves = options.move.map((text) => {
        const eq = text.indexOf('=');
        if (eq <= 0)
          throw new ZenithError('ZEN_BAD_REQUEST', `--move takes VM=HOST, not '${text}'`);
        return { vm: text.slice(0, eq), to: text.slice(eq + 1) };
      });
      const plan = await ApiClient.fromConfig(globals).post<Plan>('/placement/plans', { moves });
      if (globals.json) return printJson(plan);
      printPlan(plan);
      process.stderr.write(`apply it with: zenith plans apply ${plan.id}\n`);
    });
  plans
    .command('apply <id>')
    .description('Apply a proposed plan and wait for it, with progress against the prediction')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (id: string, options: { wait: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const task = await client.post<TaskSummary>(`${planPath(id)}/apply`);
      if (!options.wait) {
        if (globals.json) return printJson(task);
        process.stderr.write(`applying as ${task.id}\n`);
        return;
      }
      await waitAndReport(client, task, globals, id);
    });
  plans
    .command('discard <id>')
    .description('Discard a proposed plan')
    .action(async (id: string, _o: unknown, command: Command) => {
      const plan = await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request<Plan>(
        'DELETE',
        planPath(id),
      );
      process.stderr.write(`plan ${plan.id} is ${plan.state}\n`);
    });
}
