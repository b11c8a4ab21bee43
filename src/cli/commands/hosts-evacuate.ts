/** `zenith hosts evacuate`: maintenance mode — every VM leaves the host by policy, in a planned order. */
import type { Command } from 'commander';
import { ApiClient } from '../client.js';
import { printJson } from '../output.js';
import type { TaskSummary } from '../progress.js';
import type { Globals } from './globals.js';
import { printPlan, waitAndReport, type Plan } from './plan-views.js';

export function registerEvacuate(hosts: Command): void {
  hosts
    .command('evacuate <host>')
    .description(
      'Maintenance mode: every VM leaves the host by policy, in a planned order; waits with progress, then shows the predicted and actual completion',
    )
    .option('--no-wait', 'return as soon as the evacuation is queued')
    .action(async (host: string, options: { wait: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const task = await client.post<TaskSummary & { params: { planId: string } }>(
        `/hosts/${encodeURIComponent(host)}/evacuate`,
      );
      const plan = await client.get<Plan>(`/placement/plans/${task.params.planId}`);
      if (!globals.json) {
        printPlan(plan);
        process.stdout.write('\n');
      }
      if (!options.wait) {
        if (globals.json) return printJson(task);
        process.stderr.write(`evacuating as ${task.id}\n`);
        return;
      }
      await waitAndReport(client, task, globals, plan.id);
      if (!globals.json) process.stdout.write(`${host} is in maintenance\n`);
    });
}
