/** `zenith backups jobs`: list, show, add, set, remove, run backup jobs, and see what one selects. */
import type { Command } from 'commander';
import type {
  backupJobSelection,
  createBackupJob,
  getBackupJob,
  listBackupJobs,
  updateBackupJob,
} from '../../api/backup-jobs.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatTime, printJson, printKeyValues } from '../output.js';
import { runTaskAndSay } from './backup-views.js';
import { addListCommand, type Globals } from './globals.js';
import { optionalWholeNumber } from './parse-number.js';

type Job = AnswerOf<typeof getBackupJob>;

interface JobOptions {
  repository?: string;
  selector?: string;
  scope?: string;
  schedule?: string;
  timeZone?: string;
  keep?: string[];
  perHost?: string;
  perRepository?: string;
  description?: string;
  enable?: boolean;
  disable?: boolean;
  restoreTest?: string;
  restoreTestMarker?: string;
  restoreTestTimeout?: string;
}

const keepKeys = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/** `--keep last=7 --keep daily=14`: the retention; `--keep none` clears it. */
function retentionOf(keep: string[] | undefined, timeZone: string | undefined) {
  if (!keep || keep.length === 0) return undefined;
  if (keep.length === 1 && keep[0] === 'none') return null;
  const retention: Record<string, number | string> = {};
  for (const item of keep) {
    const [key, value] = item.split('=');
    if (!keepKeys.includes(key as (typeof keepKeys)[number]) || !/^\d+$/.test(value ?? ''))
      throw new Error(`--keep ${item}: give ${keepKeys.join('|')}=<number>, or none`);
    retention[key!] = Number(value);
  }
  if (timeZone) retention.timeZone = timeZone;
  return retention;
}

/** The body of an add or a set: only what was given (an empty string clears selector, scope, schedule). */
function bodyOf(options: JobOptions): Record<string, unknown> {
  const clear = (value: string | undefined) =>
    value === undefined ? undefined : value === '' ? null : value;
  const concurrency = {
    ...(options.perHost !== undefined
      ? { perHost: optionalWholeNumber('--per-host', options.perHost) }
      : {}),
    ...(options.perRepository !== undefined
      ? { perRepository: optionalWholeNumber('--per-repository', options.perRepository) }
      : {}),
  };
  const retention = retentionOf(options.keep, options.timeZone);
  const body: Record<string, unknown> = {
    repository: options.repository,
    selector: clear(options.selector),
    scope: clear(options.scope),
    schedule: clear(options.schedule),
    timeZone: options.timeZone,
    description: options.description,
    ...(retention !== undefined ? { retention } : {}),
    ...(Object.keys(concurrency).length > 0 ? { concurrency } : {}),
    ...(options.enable ? { enabled: true } : options.disable ? { enabled: false } : {}),
    ...(options.restoreTest === ''
      ? { restoreTest: null }
      : options.restoreTest !== undefined
        ? {
            restoreTest: {
              host: options.restoreTest,
              ...(options.restoreTestMarker ? { marker: options.restoreTestMarker } : {}),
              ...(options.restoreTestTimeout !== undefined
                ? {
                    timeoutSeconds: optionalWholeNumber(
                      '--restore-test-timeout',
                      options.restoreTestTimeout,
                    ),
                  }
                : {}),
            },
          }
        : {}),
  };
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

function retentionText(job: Job): string {
  if (!job.retention) return 'keep everything';
  return keepKeys
    .filter((key) => job.retention![key] !== undefined)
    .map((key) => `${key}=${String(job.retention![key])}`)
    .join(' ');
}

function withJobOptions(command: Command): Command {
  return command
    .option(
      '--selector <condition>',
      "which VMs, e.g. \"'env:prod' in vm.tags\" ('' for all in scope)",
    )
    .option('--scope <object>', "the object whose subtree the job reaches ('' for everything)")
    .option('--schedule <cron>', "when, e.g. '0 2 * * *' ('' for on demand only)")
    .option('--time-zone <zone>', 'the IANA time zone the schedule and retention are read in')
    .option(
      '--keep <rule>',
      'retention, repeatable: last=N, hourly=N, daily=N, weekly=N, monthly=N, yearly=N; none to keep everything',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--per-host <n>', 'backups at once on one host (default 1)')
    .option('--per-repository <n>', 'backups at once into the repository (default 2)')
    .option('--description <text>', 'what the job is for')
    .option(
      '--restore-test <host>',
      "after each run, restore-test every backup it made on this host (booted isolated, then removed); '' for none",
    )
    .option(
      '--restore-test-marker <regexp>',
      'what the guest prints once it is up (default a login prompt)',
    )
    .option(
      '--restore-test-timeout <seconds>',
      'how long a restore test waits for it (default 300)',
    );
}

export function registerJobs(backups: Command): void {
  const jobs = backups
    .command('jobs')
    .description('Backup jobs: which VMs, where, when, how many at once, what to keep');
  addListCommand<AnswerOf<typeof listBackupJobs>>(jobs, {
    description: 'List the jobs with their next and last runs',
    path: '/backup-jobs',
    headers: ['NAME', 'REPOSITORY', 'SCOPE', 'SCHEDULE', 'NEXT RUN', 'LAST RUN', 'STATE'],
    row: (job) => [
      job.name,
      job.repository.name,
      job.scope?.name ?? 'everything',
      job.schedule ? `${job.schedule} ${job.timeZone}` : 'on demand',
      job.enabled ? formatTime(job.nextRuns[0] ?? null) : 'disabled',
      job.lastRun ? `${job.lastRun.state} ${formatTime(job.lastRun.endedAt)}` : null,
      job.enabled ? 'enabled' : 'disabled',
    ],
  });
  jobs
    .command('show <job>')
    .description(
      'One job: its settings, identity, next slots, last run, and the VMs it selects now',
    )
    .action(async (job: string, _o: unknown, command: Command) => {
      const globals = command.optsWithGlobals<Globals>();
      const client = ApiClient.fromConfig(globals);
      const path = `/backup-jobs/${encodeURIComponent(job)}`;
      const shown = await client.get<Job>(path);
      const selection = await client.get<AnswerOf<typeof backupJobSelection>>(`${path}/selection`);
      if (globals.json) return printJson({ ...shown, selection });
      printKeyValues([
        ['name', shown.name],
        ['id', shown.id],
        ['description', shown.description],
        ['repository', `${shown.repository.name} (${shown.repository.id})`],
        ['selector', shown.selector ?? 'every VM in scope'],
        ['scope', shown.scope ? `${shown.scope.kind} ${shown.scope.name}` : 'everything'],
        ['schedule', shown.schedule ? `${shown.schedule} (${shown.timeZone})` : 'on demand only'],
        ['enabled', shown.enabled ? 'yes' : 'no'],
        ['next runs', shown.nextRuns.map((at) => formatTime(at)).join(', ') || null],
        ['retention', retentionText(shown)],
        [
          'at once',
          `${shown.concurrency.perHost} per host, ${shown.concurrency.perRepository} per repository`,
        ],
        [
          'restore tests',
          shown.restoreTest
            ? `on ${shown.restoreTest.host.name}${shown.restoreTest.marker ? `, waiting for /${shown.restoreTest.marker}/` : ''}`
            : 'none',
        ],
        ['acts as', shown.identity.name],
        [
          'last run',
          shown.lastRun
            ? `${shown.lastRun.state} (${shown.lastRun.trigger}, ${shown.lastRun.taskId}) ${formatTime(shown.lastRun.endedAt)}`
            : null,
        ],
        ['selects', selection.vms.map((vm) => vm.name).join(', ') || 'nothing'],
        [
          'cannot back up',
          selection.skipped.map((vm) => `${vm.name} (${vm.reason})`).join(', ') || null,
        ],
      ]);
    });
  withJobOptions(
    jobs
      .command('add <name> <repository>')
      .description(
        'Make a job (it acts as an identity of its own, bound to backup-job on its scope)',
      )
      .option('--disable', 'make it disabled'),
  ).action(async (name: string, repository: string, options: JobOptions, command: Command) => {
    const globals = command.optsWithGlobals<Globals>();
    const made = await ApiClient.fromConfig(globals).post<AnswerOf<typeof createBackupJob>>(
      '/backup-jobs',
      { name, ...bodyOf({ ...options, repository }) },
    );
    if (globals.json) return printJson(made);
    process.stderr.write(
      `backup job ${made.name} (${made.id}), acting as ${made.identity.name}; ${
        made.nextRuns.length > 0 ? `next run ${formatTime(made.nextRuns[0])}` : 'on demand only'
      }\n`,
    );
  });
  withJobOptions(
    jobs
      .command('set <job>')
      .description('Change a job (only what is given)')
      .option('--repository <repository>', 'write to another repository')
      .option('--enable', 'enable it')
      .option('--disable', 'disable it (its schedule stops; it still runs on demand)'),
  ).action(async (job: string, options: JobOptions, command: Command) => {
    const globals = command.optsWithGlobals<Globals>();
    const changed = await ApiClient.fromConfig(globals).request<AnswerOf<typeof updateBackupJob>>(
      'PATCH',
      `/backup-jobs/${encodeURIComponent(job)}`,
      bodyOf(options),
    );
    if (globals.json) return printJson(changed);
    process.stderr.write(`backup job ${changed.name} changed\n`);
  });
  jobs
    .command('remove <job>')
    .description('Remove a job, its schedule and its identity (its backups stay)')
    .action(async (job: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request(
        'DELETE',
        `/backup-jobs/${encodeURIComponent(job)}`,
      );
      process.stderr.write(`removed backup job ${job} (its backups stay)\n`);
    });
  jobs
    .command('run <job>')
    .description('Run a job now and wait for it; one line per VM')
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (job: string, options: { wait: boolean }, command: Command) =>
      runTaskAndSay(
        command.optsWithGlobals<Globals>(),
        `/backup-jobs/${encodeURIComponent(job)}/run`,
        {},
        options.wait,
        (result) => {
          const vms = (result.vms ?? []) as Array<{
            vmName: string;
            state: string;
            backupId?: string;
            scope?: string;
          }>;
          const skipped = (result.skipped ?? []) as Array<{ vmName: string; reason: string }>;
          const pruned = (result.pruned ?? []) as string[];
          const tests = (result.restoreTests ?? []) as Array<{ vmName: string; state: string }>;
          return [
            ...vms.map(
              (vm) =>
                `${vm.vmName}: ${vm.state}${vm.backupId ? ` ${vm.backupId} (${vm.scope ?? ''})` : ''}`,
            ),
            ...skipped.map((vm) => `${vm.vmName}: skipped (${vm.reason})`),
            ...tests.map((test) => `${test.vmName}: restore test ${test.state}`),
            `${vms.length} VM(s) backed up, ${pruned.length} backup(s) pruned${
              tests.length > 0
                ? `, ${tests.filter((test) => test.state === 'succeeded').length} of ${tests.length} restore tests passed`
                : ''
            }`,
          ].join('\n');
        },
      ),
    );
}
