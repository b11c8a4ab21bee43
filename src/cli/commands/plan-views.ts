/** What the rebalance, plans and hosts evacuate commands share: how a plan is shown, and waiting for one. */
import type { PlanView } from '../../api/placement.js';
import { ApiClient } from '../client.js';
import { formatBytes, printJson, printKeyValues, printTable } from '../output.js';
import { waitForTask, type TaskSummary } from '../progress.js';
import type { Globals } from './globals.js';

/** A plan as the API answers it (the contract's PlanView). */
export type Plan = PlanView;

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`;
}

const percent = (load: number) => `${(load * 100).toFixed(1)}%`;

export function printPlan(plan: Plan): void {
  printKeyValues([
    ['plan', `${plan.id} (${plan.kind}, ${plan.state})`],
    ['moves', plan.moves.length],
    ['predicted completion', seconds(plan.predictedCompletionMs)],
    ['peak concurrency', plan.peakConcurrency],
    ...(plan.reordered ? [['order', 'moves reordered to stay feasible'] as [string, unknown]] : []),
    ...(plan.wakes ?? []).map(
      (wake) => ['powers on first', `${wake.hostName} — ${wake.reason}`] as [string, unknown],
    ),
    ...(plan.metrics
      ? ([
          [
            'imbalance (std. dev. of load)',
            `${percent(plan.metrics.before.stddevLoad)} → ${percent(plan.metrics.after.stddevLoad)}`,
          ],
          [
            'busiest host',
            `${percent(plan.metrics.before.maxLoad)} → ${percent(plan.metrics.after.maxLoad)}`,
          ],
          ['memory moved', formatBytes(plan.metrics.bytesMoved)],
          ...(plan.metrics.hostsEmptied.length > 0
            ? [['hosts emptied', plan.metrics.hostsEmptied.length]]
            : []),
        ] as Array<[string, unknown]>)
      : []),
    ...(plan.outcome
      ? ([
          ['actual completion', seconds(plan.outcome.actualCompletionMs)],
          ['moves done / failed', `${plan.outcome.succeeded} / ${plan.outcome.failed}`],
          ...(plan.outcome.error
            ? [['error', `${plan.outcome.error.code}: ${plan.outcome.error.message}`]]
            : []),
        ] as Array<[string, unknown]>)
      : []),
  ]);
  if (plan.moves.length === 0) return;
  process.stdout.write('\n');
  printTable(
    ['#', 'VM', 'FROM', 'TO', 'MEMORY', 'START', 'END', 'GAIN'],
    plan.moves.map((m) => [
      m.order + 1,
      m.vmName,
      m.fromHostName,
      m.toHostName,
      formatBytes(m.memoryBytes),
      seconds(m.startMs),
      seconds(m.endMs),
      m.benefit !== undefined ? percent(m.benefit) : null,
    ]),
  );
}

export async function waitAndReport(
  client: ApiClient,
  task: TaskSummary,
  globals: Globals,
  planId?: string,
) {
  const done = await waitForTask(client, task.id, { quiet: globals.json === true });
  const result = done.result as {
    predictedCompletionMs?: number;
    actualCompletionMs?: number;
  } | null;
  if (globals.json)
    return printJson(planId ? await client.get(`/placement/plans/${planId}`) : done);
  if (result?.predictedCompletionMs !== undefined && result.actualCompletionMs !== undefined)
    process.stdout.write(
      `done: predicted ${seconds(result.predictedCompletionMs)}, took ${seconds(result.actualCompletionMs)}\n`,
    );
}
