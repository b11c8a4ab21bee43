/** zenith rebalance, zenith plans …, zenith hosts evacuate | exit-maintenance */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import type { PlanView } from '../../api/placement.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { waitForTask, type TaskSummary } from '../progress.js';
import { decimalNumber, wholeNumber } from './parse-number.js';

interface Globals {
  json?: boolean;
  server?: string;
}

/** A plan as the API answers it (the contract's PlanView). */
type Plan = PlanView;

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`;
}

const percent = (load: number) => `${(load * 100).toFixed(1)}%`;

function printPlan(plan: Plan): void {
  printKeyValues([
    ['plan', `${plan.id} (${plan.kind}, ${plan.state})`],
    ['moves', plan.moves.length],
    ['predicted completion', seconds(plan.predictedCompletionMs)],
    ['peak concurrency', plan.peakConcurrency],
    ...(plan.reordered ? [['order', 'moves reordered to stay feasible'] as [string, unknown]] : []),
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

async function waitAndReport(
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

export function registerPlans(program: Command): void {
  program
    .command('rebalance')
    .description(
      'Compute a rebalancing plan (shown, stored for approval: zenith plans apply ID), or with --apply run it at once',
    )
    .option('--mode <mode>', 'balance (even out the load) or consolidate (empty hosts)', 'balance')
    .option('--max-moves <n>', 'at most this many moves', '20')
    .option(
      '--min-benefit <load>',
      'balance: the least a move must lower the busier host (0.05 = 5 points)',
      '0.05',
    )
    .option('--cluster <cluster>', 'only the hosts of this cluster')
    .option('--datacenter <datacenter>', 'only the hosts of this datacenter')
    .option('--consolidate-below <load>', 'consolidate: empty hosts up to this load', '0.3')
    .option('--target-load <load>', 'consolidate: fill no host above this load', '0.8')
    .option('--apply', 'apply the plan at once and wait for it')
    .action(
      async (
        options: {
          mode: string;
          maxMoves: string;
          minBenefit: string;
          cluster?: string;
          datacenter?: string;
          consolidateBelow: string;
          targetLoad: string;
          apply?: boolean;
        },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        if (options.cluster && options.datacenter)
          throw new ZenithError('ZEN_BAD_REQUEST', 'give --cluster or --datacenter, not both');
        const scope = options.cluster
          ? { kind: 'cluster', id: options.cluster }
          : options.datacenter
            ? { kind: 'datacenter', id: options.datacenter }
            : undefined;
        const answer = await client.post<{ plan: Plan; task: TaskSummary | null }>(
          '/placement/rebalance',
          {
            mode: options.mode,
            maxMoves: wholeNumber(options.maxMoves, '--max-moves'),
            minBenefit: decimalNumber(options.minBenefit, '--min-benefit'),
            ...(scope ? { scope } : {}),
            ...(options.mode === 'consolidate'
              ? {
                  consolidateBelow: decimalNumber(options.consolidateBelow, '--consolidate-below'),
                  targetLoad: decimalNumber(options.targetLoad, '--target-load'),
                }
              : {}),
            apply: options.apply ? 'automatic' : 'recommend',
          },
        );
        if (!globals.json) printPlan(answer.plan);
        if (answer.task) return waitAndReport(client, answer.task, globals, answer.plan.id);
        if (globals.json) return printJson(answer);
        if (answer.plan.moves.length > 0)
          process.stderr.write(`apply it with: zenith plans apply ${answer.plan.id}\n`);
        else process.stderr.write('nothing to gain: no move brings the minimum benefit\n');
      },
    );

  const plans = program
    .command('plans')
    .description('Migration plans: rebalancing, evacuations, given moves');
  plans
    .command('list', { isDefault: true })
    .description('Plans, newest first')
    .option('--state <state>', 'proposed, applying, applied, failed or discarded')
    .option('--limit <n>', 'how many', '20')
    .action(async (options: { state?: string; limit: string }, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const query = new URLSearchParams({
        limit: options.limit,
        ...(options.state ? { state: options.state } : {}),
      });
      const list = await ApiClient.fromConfig(globals).get<{ items: Plan[] }>(
        `/placement/plans?${query.toString()}`,
      );
      if (globals.json) return printJson(list);
      printTable(
        ['ID', 'KIND', 'STATE', 'MOVES', 'PREDICTED', 'ACTUAL', 'CREATED'],
        list.items.map((p) => [
          p.id,
          p.kind,
          p.state,
          p.moves.length,
          seconds(p.predictedCompletionMs),
          p.outcome ? seconds(p.outcome.actualCompletionMs) : null,
          formatTime(p.createdAt),
        ]),
      );
    });
  plans
    .command('show <id>')
    .description('One plan: its moves in order with predicted times, and its outcome once applied')
    .action(async (id: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const plan = await ApiClient.fromConfig(globals).get<Plan>(
        `/placement/plans/${encodeURIComponent(id)}`,
      );
      if (globals.json) return printJson(plan);
      printPlan(plan);
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
      const task = await client.post<TaskSummary>(
        `/placement/plans/${encodeURIComponent(id)}/apply`,
      );
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
        `/placement/plans/${encodeURIComponent(id)}`,
      );
      process.stderr.write(`plan ${plan.id} is ${plan.state}\n`);
    });

  const hosts = program.commands.find((c) => c.name() === 'hosts');
  if (!hosts) throw new Error('register the hosts command before the plans commands');
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
  hosts
    .command('exit-maintenance <host>')
    .description('Take a host out of maintenance: placement may use it again')
    .action(async (host: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const answer = await ApiClient.fromConfig(globals).post<{ hostId: string; mode: string }>(
        `/hosts/${encodeURIComponent(host)}/exit-maintenance`,
      );
      if (globals.json) return printJson(answer);
      process.stderr.write(`${host} is back in service\n`);
    });
}
