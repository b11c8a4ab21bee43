/** `zenith backups repositories`: list, show (usage), add, remove and verify backup repositories, and verify them or collect their garbage on a schedule. */
import type { Command } from 'commander';
import type {
  addBackupRepository,
  getBackupRepository,
  listBackupRepositories,
  getVerifySchedule,
  setVerifySchedule,
} from '../../api/backups.js';
import type { AnswerOf } from '../../api/operation.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues } from '../output.js';
import { runTaskAndSay } from './backup-views.js';
import { addListCommand, addShowCommand, type Globals } from './globals.js';
import { parseSize } from './parse-size.js';

export function registerRepositories(backups: Command): void {
  const repositories = backups
    .command('repositories')
    .description('Backup repositories: directories inside the backup roots');
  addListCommand<AnswerOf<typeof listBackupRepositories>>(repositories, {
    description: 'List the repositories',
    path: '/backup-repositories',
    headers: ['NAME', 'PATH', 'BACKUPS', 'CHUNK SIZE', 'ENCRYPTED', 'SCANNED', 'ID'],
    row: (r) => [
      r.name,
      r.path,
      r.backups,
      formatBytes(r.chunkSize),
      r.encrypted ? 'yes' : 'no',
      formatTime(r.scannedAt),
      r.id,
    ],
  });
  addShowCommand<AnswerOf<typeof getBackupRepository>>(repositories, {
    usage: 'show <repository>',
    description: 'One repository with its usage: chunks, bytes stored, deduplication, free space',
    path: (repository) => `/backup-repositories/${encodeURIComponent(repository)}`,
    print: (shown) => {
      const { usage } = shown;
      printKeyValues([
        ['name', shown.name],
        ['id', shown.id],
        ['path', shown.path],
        ['encrypted', shown.encrypted ? 'yes' : 'no'],
        ['chunk size', formatBytes(shown.chunkSize)],
        ['backups', shown.backups],
        ['created', formatTime(shown.createdAt)],
        ['scanned', formatTime(shown.scannedAt)],
        ['chunks', usage.chunks],
        ['stored', formatBytes(usage.storedBytes)],
        ['logical', formatBytes(usage.logicalBytes)],
        ['dedup ratio', usage.dedupRatio === null ? null : `${usage.dedupRatio}x`],
        [
          'free space',
          `${formatBytes(usage.filesystem.freeBytes)} of ${formatBytes(usage.filesystem.totalBytes)}`,
        ],
      ]);
    },
  });
  repositories
    .command('add <name> <path>')
    .description(
      'Register a repository: a new one in an empty directory inside the backup roots, or one already there (its backups come into the catalogue)',
    )
    .option('--encrypted', 'make the new repository encrypted (its key is printed once)')
    .option('--chunk-size <size>', "a new repository's chunk size, e.g. 4MiB (64KiB to 64MiB)")
    .option(
      '--key <hex>',
      'the key (64 hex digits) of an encrypted repository already in the path, or of a new one with --encrypted',
    )
    .action(
      async (
        name: string,
        path: string,
        options: { encrypted?: boolean; chunkSize?: string; key?: string },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const added = await ApiClient.fromConfig(globals).post<
          AnswerOf<typeof addBackupRepository>
        >('/backup-repositories', {
          name,
          path,
          ...(options.encrypted ? { encrypted: true } : {}),
          ...(options.chunkSize ? { chunkSize: parseSize(options.chunkSize) } : {}),
          ...(options.key ? { key: options.key } : {}),
        });
        const warning = `the key of ${added.repository.name} is shown only this once: keep a copy elsewhere, or its backups cannot be restored without this control plane\n`;
        if (globals.json) {
          printJson(added);
          if (added.key) process.stderr.write(warning);
          return;
        }
        if (added.key) {
          process.stdout.write(`${added.key}\n`);
          process.stderr.write(warning);
        }
        process.stderr.write(
          `repository ${added.repository.name} (${added.repository.id}) at ${added.repository.path}, ${added.repository.backups} backup(s)\n`,
        );
      },
    );
  repositories
    .command('remove <repository>')
    .description('Forget a repository (its files stay; registered again, its backups come back)')
    .action(async (repository: string, _o: unknown, command: Command) => {
      await ApiClient.fromConfig(command.optsWithGlobals<Globals>()).request(
        'DELETE',
        `/backup-repositories/${encodeURIComponent(repository)}`,
      );
      process.stderr.write(`removed repository ${repository} (its files stay)\n`);
    });
  repositories
    .command('verify <repository>')
    .description(
      'Re-read every chunk and manifest and wait for the task; backups using a damaged chunk are marked damaged',
    )
    .option('--no-wait', 'return as soon as the task is queued')
    .action(async (repository: string, options: { wait: boolean }, command: Command) =>
      runTaskAndSay(
        command.optsWithGlobals<Globals>(),
        `/backup-repositories/${encodeURIComponent(repository)}/verify`,
        {},
        options.wait,
        (r) => {
          const damaged = (r.damaged ?? []) as Array<{ backupId: string; reason: string }>;
          const chunks = (r.damagedChunks ?? []) as string[];
          const checked = `checked ${String(r.checkedBackups)} backup(s), ${String(r.checkedChunks)} chunk(s)`;
          if (damaged.length === 0 && chunks.length === 0) return `${checked}: no damage`;
          return [
            `${checked}: ${chunks.length} damaged chunk(s), ${damaged.length} damaged backup(s)`,
            ...damaged.map((d) => `  ${d.backupId}: ${d.reason}`),
          ].join('\n');
        },
      ),
    );
  scheduleCommand(repositories, 'verify', 'verify-schedule', 'verifies the repository');
  scheduleCommand(
    repositories,
    'garbage-collect',
    'gc-schedule',
    'removes the chunks no backup names',
  );
}

/** `<name> <repository> [schedule]`: show a repository's schedule for the work, set it, or remove it. */
function scheduleCommand(
  repositories: Command,
  work: 'verify' | 'garbage-collect',
  name: string,
  what: string,
): void {
  repositories
    .command(`${name} <repository> [schedule]`)
    .description(
      `Show the repository's schedule, or set one (a cron pattern in a time zone: each slot ${what}, as the system)`,
    )
    .option('--time-zone <zone>', 'an IANA time zone the pattern is read in (default UTC)')
    .option('--disable', 'keep the schedule but fire no slot')
    .option('--off', 'remove the schedule: on demand only')
    .action(
      async (
        repository: string,
        schedule: string | undefined,
        options: { timeZone?: string; disable?: boolean; off?: boolean },
        command: Command,
      ) => {
        const globals = command.optsWithGlobals<Globals>();
        const client = ApiClient.fromConfig(globals);
        const path = `/backup-repositories/${encodeURIComponent(repository)}/${work}-schedule`;
        if (options.off) {
          await client.request('DELETE', path);
          process.stderr.write(`${repository}: ${work} on demand only\n`);
          return;
        }
        const view = schedule
          ? await client.request<AnswerOf<typeof setVerifySchedule>>('PUT', path, {
              schedule,
              ...(options.timeZone ? { timeZone: options.timeZone } : {}),
              ...(options.disable ? { enabled: false } : {}),
            })
          : await client.get<AnswerOf<typeof getVerifySchedule>>(path);
        if (globals.json) return printJson(view);
        printKeyValues([
          ['repository', view.repository.name],
          ['work', view.work],
          ['schedule', `${view.schedule} (${view.timeZone})${view.enabled ? '' : ', disabled'}`],
          ['next runs', view.nextRuns.map((at) => formatTime(at)).join(', ') || null],
          [
            'last run',
            view.lastRun
              ? `${view.lastRun.state} (task ${view.lastRun.taskId}, ${formatTime(view.lastRun.startedAt)})`
              : null,
          ],
        ]);
      },
    );
}
