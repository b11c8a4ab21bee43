/** `zenith recovery-plans`: make plans, preview and run them (test, planned, failover), see their runs. */
import type { Command } from 'commander';
import type { AnswerOf } from '../../api/operation.js';
import type {
  getRecoveryPlan,
  listRecoveryPlans,
  listRecoveryRuns,
  previewRecoveryPlan,
} from '../../api/replication.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues, printTable } from '../output.js';
import { runTaskAndSay } from './backup-views.js';
import { addListCommand, addShowCommand, collect, type Globals } from './globals.js';

type Plan = AnswerOf<typeof getRecoveryPlan>;
type Run = AnswerOf<typeof listRecoveryRuns>['items'][number];

const planPath = (plan: string) => `/recovery-plans/${encodeURIComponent(plan)}`;
const operations = ['test', 'planned', 'failover'] as const;

/** `--group vm1,vm2` → one priority group each, in the order given. */
function groupsOf(groups: string[], marker?: string, timeout?: string, guestAgent?: boolean) {
  if (timeout !== undefined && !/^\d+$/.test(timeout))
    throw new Error('--timeout must be a whole number of seconds');
  return groups.map((group) => ({
    vms: group.split(',').filter((vm) => vm !== ''),
    ...(marker ? { marker } : {}),
    ...(guestAgent ? { guestAgent: true } : {}),
    ...(timeout !== undefined ? { timeoutSeconds: Number(timeout) } : {}),
  }));
}

/** `--network bridge:br0=bridge:dr0[,test=isolated]`. */
function networkOf(items: string[] | undefined) {
  return (items ?? []).map((item) => {
    const [mapping, test] = item.split(',test=');
    const [from, to] = (mapping ?? '').split('=');
    if (!from || !to) throw new Error(`--network ${item}: give FROM=TO[,test=TEST]`);
    return { from, to, ...(test ? { test } : {}) };
  });
}

function printRun(run: Run): void {
  printKeyValues([
    ['run', `${run.id} (${run.operation}, ${run.state})`],
    ['started', formatTime(run.startedAt)],
    ['ended', formatTime(run.endedAt)],
    ['rto', run.rtoSeconds === null ? null : `${run.rtoSeconds.toFixed(1)} s`],
    [
      'data loss window',
      run.dataLossSeconds === null ? null : `${run.dataLossSeconds.toFixed(1)} s`,
    ],
    [
      'fenced',
      [
        ...new Set(
          run.vms.flatMap((vm) =>
            vm.fenced
              ? [
                  `${vm.fenced.host.name} (through its BMC, off in ${(vm.fenced.elapsedMs / 1000).toFixed(1)} s)`,
                ]
              : [],
          ),
        ),
      ].join(', ') || null,
    ],
    ['error', run.error],
  ]);
  printTable(
    ['GROUP', 'VM', 'STATE', 'HOST', 'DATA TAKEN', 'STARTED', 'UP', 'REASON'],
    run.vms.map((vm) => [
      vm.group + 1,
      vm.vm.name,
      vm.state,
      vm.host?.name ?? null,
      formatTime(vm.pointTakenAt),
      formatTime(vm.startedAt),
      formatTime(vm.upAt),
      vm.reason,
    ]),
  );
}

export function registerRecoveryPlans(program: Command): void {
  const plans = program
    .command('recovery-plans')
    .description('Recovery plans: ordered groups of replicated VMs started at another site');
  addListCommand<AnswerOf<typeof listRecoveryPlans>>(plans, {
    description: 'List the plans with their last run',
    path: '/recovery-plans',
    headers: ['NAME', 'FROM', 'TO', 'VMS', 'LAST RUN'],
    row: (plan) => [
      plan.name,
      plan.sourceSite.name,
      plan.targetSite.name,
      plan.groups.reduce((sum, g) => sum + g.vms.length, 0),
      plan.lastRun
        ? `${plan.lastRun.operation} ${plan.lastRun.state} ${formatTime(plan.lastRun.startedAt)}`
        : null,
    ],
  });
  addShowCommand<Plan>(plans, {
    usage: 'show <plan>',
    description: 'One plan: its groups, networks and last run',
    path: planPath,
    print: (shown) => {
      printKeyValues([
        ['name', shown.name],
        ['id', shown.id],
        ['from', shown.sourceSite.name],
        ['to', shown.targetSite.name],
        ...shown.groups.map((g, index): [string, string] => [
          `group ${index + 1}`,
          `${g.vms.map((vm) => vm.name).join(', ')}${g.marker ? ` (up: /${g.marker}/)` : ''}${g.guestAgent ? ' (up: its guest agent answers)' : ''}, ${g.timeoutSeconds} s`,
        ]),
        [
          'networks',
          shown.networkMap
            .map((m) => `${m.from} → ${m.to} (test: ${m.test ?? 'isolated'})`)
            .join('; ') || 'as they are (tests: isolated)',
        ],
      ]);
      if (shown.lastRun) printRun(shown.lastRun);
    },
  });
  plans
    .command('add <name>')
    .description('Make a plan: --group once per priority group, in start order')
    .requiredOption('--from <site>', 'the protected site')
    .requiredOption('--to <site>', 'the recovery site')
    .requiredOption('--group <vms>', 'VMs started together, comma-separated (repeatable)', collect)
    .option('--marker <regexp>', 'what a guest prints once it is up (default: running is up)')
    .option('--guest-agent', 'a guest is up once its guest agent answers (too)')
    .option('--timeout <seconds>', 'how long a group may take before the next starts anyway')
    .option(
      '--network <mapping>',
      'FROM=TO[,test=TEST], e.g. bridge:br0=bridge:dr0,test=isolated (repeatable)',
      collect,
    )
    .option('--description <text>', 'what the plan is for')
    .option(
      '--shutdown-timeout <seconds>',
      'a planned migration powers a guest off after this long if it has not shut down (default 120)',
    )
    .action(
      async (
        name: string,
        options: {
          from: string;
          to: string;
          group: string[];
          marker?: string;
          guestAgent?: boolean;
          timeout?: string;
          network?: string[];
          description?: string;
          shutdownTimeout?: string;
        },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const made = await ApiClient.fromConfig(globals).post<Plan>('/recovery-plans', {
          name,
          sourceSite: options.from,
          targetSite: options.to,
          groups: groupsOf(options.group, options.marker, options.timeout, options.guestAgent),
          networkMap: networkOf(options.network),
          ...(options.shutdownTimeout !== undefined
            ? { shutdownTimeoutSeconds: Number(options.shutdownTimeout) }
            : {}),
          ...(options.description ? { description: options.description } : {}),
        });
        if (globals.json) return printJson(made);
        process.stderr.write(`recovery plan ${made.name} (${made.id})\n`);
      },
    );
  plans
    .command('preview <plan> <operation>')
    .description(`What running the plan would do now (${operations.join('|')}), and what stops it`)
    .action(async (plan: string, operation: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const preview = await ApiClient.fromConfig(globals).get<AnswerOf<typeof previewRecoveryPlan>>(
        `${planPath(plan)}/preview?operation=${encodeURIComponent(operation)}`,
      );
      if (globals.json) return printJson(preview);
      printTable(
        ['GROUP', 'VM', 'ON', 'DATA TAKEN', 'ACTION'],
        preview.steps.map((s) => [
          s.group + 1,
          s.vm.name,
          s.host?.name ?? null,
          formatTime(s.pointTakenAt),
          s.action,
        ]),
      );
      for (const p of preview.problems)
        process.stderr.write(`cannot run: ${p.vm ? `${p.vm.name}: ` : ''}${p.problem}\n`);
    });
  plans
    .command('run <plan> <operation>')
    .description(`Run the plan: ${operations.join('|')}`)
    .option('--no-wait', 'answer with the task at once')
    .action(
      async (plan: string, operation: string, options: { wait: boolean }, command: Command) => {
        await runTaskAndSay(
          command.optsWithGlobals<Globals>(),
          `${planPath(plan)}/runs`,
          { operation },
          options.wait,
          (result) =>
            `run ${String(result.id)}: ${String(result.state)}, RTO ${
              typeof result.rtoSeconds === 'number' ? `${result.rtoSeconds.toFixed(1)} s` : '-'
            }`,
        );
      },
    );
  plans
    .command('reprotect <plan>')
    .description(
      'After a failover: replicate its VMs back to the site they came from and turn the plan round (then `run PLAN planned` fails back)',
    )
    .action(async (plan: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const turned = await ApiClient.fromConfig(globals).post<Plan>(
        `${planPath(plan)}/reprotect`,
        {},
      );
      if (globals.json) return printJson(turned);
      process.stderr.write(
        `${turned.name} now goes from ${turned.sourceSite.name} to ${turned.targetSite.name}; its VMs replicate there\n`,
      );
    });
  plans
    .command('export <plan>')
    .description(
      "The plan with each VM's newest replica point and description, as JSON (for a second Zenith at the recovery site)",
    )
    .action(async (plan: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      printJson(await ApiClient.fromConfig(globals).get<unknown>(`${planPath(plan)}/export`));
    });
  plans
    .command('runs <plan>')
    .description("The plan's runs, each VM's step and times")
    .action(async (plan: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const runs = await ApiClient.fromConfig(globals).get<AnswerOf<typeof listRecoveryRuns>>(
        `${planPath(plan)}/runs`,
      );
      if (globals.json) return printJson(runs);
      for (const run of runs.items) printRun(run);
    });
  plans
    .command('cleanup <plan> <run>')
    .description("Remove a test failover's copies")
    .option('--no-wait', 'answer with the task at once')
    .action(async (plan: string, run: string, options: { wait: boolean }, command: Command) => {
      await runTaskAndSay(
        command.optsWithGlobals<Globals>(),
        `${planPath(plan)}/runs/${encodeURIComponent(run)}/cleanup`,
        undefined,
        options.wait,
        (result) =>
          `removed ${((result.removed as string[] | undefined) ?? []).join(', ') || 'nothing'}`,
      );
    });
  plans
    .command('remove <plan>')
    .description('Forget a plan')
    .action(async (plan: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request(
        'DELETE',
        planPath(plan),
      );
      process.stderr.write(`removed recovery plan ${plan}\n`);
    });
}
