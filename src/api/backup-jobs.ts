/**
 * Backup jobs: which VMs (a selector over the job's scope), into which repository, on what schedule
 * (cron in a time zone), how many at once, and what to keep. Each job acts as a service identity
 * of its own; its runs are tasks.
 */
import { Type, type Static } from 'typebox';
import { IdOrName, IdParams, Instant, Items, NullableInstant, NullableString } from './common.js';
import { RetentionRules } from './backups.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

const Retention = Type.Object(RetentionRules, { additionalProperties: false });
const Concurrency = Type.Object(
  {
    perHost: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    perRepository: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  },
  { additionalProperties: false },
);

export const BackupJobView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: NullableString,
  repository: Type.Object({ id: Type.String(), name: Type.String() }),
  /** A condition over vm and group facts; null: every VM in scope. */
  selector: NullableString,
  /** What the job reaches (null: everything). */
  scope: Type.Union([
    Type.Object({ id: Type.String(), name: Type.String(), kind: Type.String() }),
    Type.Null(),
  ]),
  /** A cron pattern; null: on demand only. */
  schedule: NullableString,
  timeZone: Type.String(),
  enabled: Type.Boolean(),
  retention: Type.Union([Retention, Type.Null()]),
  concurrency: Type.Object({ perHost: Type.Integer(), perRepository: Type.Integer() }),
  /** Each backup a run makes restored isolated on this host and booted, then removed; null: none. */
  restoreTest: Type.Union([
    Type.Object({
      host: Type.Object({ id: Type.String(), name: Type.String() }),
      marker: NullableString,
      timeoutSeconds: Type.Union([Type.Integer(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  /** The service identity the job acts as. */
  identity: Type.Object({ id: Type.String(), name: Type.String() }),
  /** The next slots (up to three) while enabled and scheduled. */
  nextRuns: Type.Array(Instant),
  lastRun: Type.Union([
    Type.Object({
      taskId: Type.String(),
      state: Type.String(),
      trigger: Type.String(),
      startedAt: NullableInstant,
      endedAt: NullableInstant,
    }),
    Type.Null(),
  ]),
  createdBy: Type.String(),
  createdAt: Instant,
  updatedAt: Instant,
});
export type BackupJobView = Static<typeof BackupJobView>;

const JobFields = {
  description: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
  repository: IdOrName,
  selector: Type.Optional(
    Type.Union([Type.String({ maxLength: 4096 }), Type.Null()], {
      description: "a condition over vm and group facts, e.g. 'env:prod' in vm.tags",
    }),
  ),
  scope: Type.Optional(Type.Union([IdOrName, Type.Null()])),
  schedule: Type.Optional(
    Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Null()], {
      description: 'cron: minute hour day month weekday (or seconds first); null: on demand only',
    }),
  ),
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  enabled: Type.Optional(Type.Boolean()),
  retention: Type.Optional(Type.Union([Retention, Type.Null()])),
  concurrency: Type.Optional(Concurrency),
  restoreTest: Type.Optional(
    Type.Union(
      [
        Type.Object(
          {
            host: IdOrName,
            marker: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 256,
                description:
                  'a regular expression the guest prints once it is up (default a login prompt)',
              }),
            ),
            timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
          },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      {
        description:
          "restore-test each backup a run makes on this host (the asker needs backup.restore on it and on the job's scope); null: none",
      },
    ),
  ),
};

export const listBackupJobs = operation({
  method: 'GET',
  path: '/backup-jobs',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'Backup jobs whose scope the caller may read backups on',
  success: { 200: Items(BackupJobView) },
});

export const createBackupJob = operation({
  method: 'POST',
  path: '/backup-jobs',
  auth: 'backup.manage',
  tag: 'backups',
  summary:
    'Make a backup job: backup.manage on its scope, and backup.run there too (the job is given it on its scope, acting as an identity of its own)',
  body: Type.Object(
    { name: Type.String({ minLength: 1, maxLength: 63 }), ...JobFields },
    { additionalProperties: false },
  ),
  success: { 201: BackupJobView },
  errors: [404, 409, 422],
});

export const getBackupJob = operation({
  method: 'GET',
  path: '/backup-jobs/:id',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'A backup job, its next slots and its last run',
  params: IdParams,
  success: { 200: BackupJobView },
});

export const updateBackupJob = operation({
  method: 'PATCH',
  path: '/backup-jobs/:id',
  auth: 'backup.manage',
  tag: 'backups',
  summary: 'Change a backup job (a new scope needs backup.manage and backup.run there as well)',
  params: IdParams,
  body: Type.Object(
    { ...JobFields, repository: Type.Optional(IdOrName) },
    { additionalProperties: false },
  ),
  success: { 200: BackupJobView },
  errors: [409, 422],
});

export const deleteBackupJob = operation({
  method: 'DELETE',
  path: '/backup-jobs/:id',
  auth: 'backup.manage',
  tag: 'backups',
  summary: 'Remove a backup job, its schedule and its identity (its backups stay)',
  params: IdParams,
  success: { 200: BackupJobView },
  errors: [409],
});

export const runBackupJob = operation({
  method: 'POST',
  path: '/backup-jobs/:id/run',
  auth: 'backup.run',
  tag: 'backups',
  summary:
    'Run the job now (after its run under way, if one is); answers 202 with the task, whose result lists each VM’s backup',
  params: IdParams,
  success: { 202: TaskView },
  errors: [409],
});

export const backupJobSelection = operation({
  method: 'GET',
  path: '/backup-jobs/:id/selection',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'The VMs a run of the job would back up now, and those it selects but cannot back up',
  params: IdParams,
  success: {
    200: Type.Object({
      vms: Type.Array(
        Type.Object({ id: Type.String(), name: Type.String(), hostId: NullableString }),
      ),
      skipped: Type.Array(
        Type.Object({ id: Type.String(), name: Type.String(), reason: Type.String() }),
      ),
    }),
  },
});
