/** `zenith rebalance`: compute a rebalancing plan, stored for approval or run at once. */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { printJson } from '../output.js';
import type { TaskSummary } from '../progress.js';
import { decimalNumber, wholeNumber } from './parse-number.js';
import type { Globals } from './globals.js';
import { printPlan, waitAndReport, type Plan } from './plan-views.js';

export function registerRebalance(program: Command): void {
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
    .option(
      '--wake-standby',
      'count hosts in standby (powered off by power management) as on: applying powers them on first',
    )
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
          wakeStandby?: boolean;
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
            ...(options.wakeStandby ? { wakeStandby: true } : {}),
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
}
