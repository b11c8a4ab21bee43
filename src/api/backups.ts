/**
 * Backup: repositories (registered by path inside the backup roots), the catalogue of backups, and
 * backing up, restoring and verifying as tasks.
 */
import { Type, type Static } from 'typebox';
import {
  IdOrName,
  IdParams,
  Instant,
  Items,
  NoContent,
  NullableInstant,
  NullableString,
  StringEnum,
} from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

export const BackupRepositoryView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  path: Type.String(),
  chunkSize: Type.Integer(),
  encrypted: Type.Boolean(),
  createdAt: Instant,
  /** When its manifests were last read into the catalogue. */
  scannedAt: NullableInstant,
  backups: Type.Integer(),
});
export type BackupRepositoryView = Static<typeof BackupRepositoryView>;

export const BackupRepositoryUsageView = Type.Object({
  ...BackupRepositoryView.properties,
  usage: Type.Object({
    chunks: Type.Integer(),
    /** Bytes the chunk files take. */
    storedBytes: Type.Integer(),
    /** What the backups' data would take stored one by one, uncompressed. */
    logicalBytes: Type.Integer(),
    /** logicalBytes over storedBytes (deduplication and compression together); null when empty. */
    dedupRatio: Type.Union([Type.Number(), Type.Null()]),
    filesystem: Type.Object({ totalBytes: Type.Integer(), freeBytes: Type.Integer() }),
  }),
});
export type BackupRepositoryUsageView = Static<typeof BackupRepositoryUsageView>;

export const backupStates = ['ok', 'damaged'] as const;

export const BackupView = Type.Object({
  id: Type.String(),
  repositoryId: Type.String(),
  vmId: Type.String(),
  vmName: Type.String(),
  /** The point in time the backup shows. */
  takenAt: Instant,
  finishedAt: Instant,
  /**
   * The VM's backup before it in the repository: its changed disks were read against it (a disk
   * whose checkpoint was lost is read in full: see disks[].scope); null for the first.
   */
  parentId: NullableString,
  jobId: NullableString,
  taskId: NullableString,
  state: StringEnum(backupStates),
  /** Why it is damaged. */
  damage: NullableString,
  /** The disks' capacity. */
  sizeBytes: Type.Integer(),
  /** Bytes read from the disks (an incremental reads only what changed). */
  readBytes: Type.Integer(),
  /** Bytes of new chunks it stored (after deduplication and compression). */
  storedBytes: Type.Integer(),
  newChunks: Type.Integer(),
  /** Chunks already in the repository (from earlier backups, other disks or other VMs). */
  sharedChunks: Type.Integer(),
  zeroChunks: Type.Integer(),
  /**
   * Every disk was read with the guest's file systems frozen through its guest agent (an
   * application-consistent point in time); false: crash-consistent, or a stopped VM.
   */
  quiesced: Type.Boolean(),
  disks: Type.Array(
    Type.Object({
      diskId: Type.String(),
      capacityBytes: Type.Integer(),
      scope: StringEnum(['full', 'changed'] as const),
      readBytes: Type.Integer(),
      storedBytes: Type.Integer(),
      checkpoint: NullableString,
      quiesced: Type.Boolean(),
      /** File systems the guest agent froze for this disk's point in time. */
      frozenFileSystems: Type.Integer(),
      /** Why a running VM's disk was not quiesced (no agent channel, no answer, …); null otherwise. */
      quiesceNote: NullableString,
    }),
  ),
});
export type BackupView = Static<typeof BackupView>;

export const listBackupRepositories = operation({
  method: 'GET',
  path: '/backup-repositories',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'Backup repositories',
  success: { 200: Items(BackupRepositoryView) },
});

export const addBackupRepository = operation({
  method: 'POST',
  path: '/backup-repositories',
  auth: 'backup.manage',
  tag: 'backups',
  summary:
    'Register a repository: a new one in an empty directory inside the backup roots, or one already there (its backups come into the catalogue); a new encrypted one answers its key, once',
  body: Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 63 }),
      path: Type.String({ minLength: 1, maxLength: 4096 }),
      chunkSize: Type.Optional(Type.Integer({ minimum: 65536, maximum: 67108864 })),
      encrypted: Type.Optional(Type.Boolean()),
      /** An existing encrypted repository's key (64 hex digits). */
      key: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$' })),
    },
    { additionalProperties: false },
  ),
  success: {
    201: Type.Object({
      repository: BackupRepositoryView,
      /** A new encrypted repository's key: keep it elsewhere too (without it nothing restores). */
      key: NullableString,
    }),
  },
  errors: [409, 422],
});

export const getBackupRepository = operation({
  method: 'GET',
  path: '/backup-repositories/:id',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'A repository with its usage and deduplication ratio',
  params: IdParams,
  success: { 200: BackupRepositoryUsageView },
  errors: [422],
});

export const removeBackupRepository = operation({
  method: 'DELETE',
  path: '/backup-repositories/:id',
  auth: 'backup.manage',
  tag: 'backups',
  summary: 'Forget a repository (its files stay; registered again, its backups come back)',
  params: IdParams,
  success: { 204: NoContent },
  errors: [409],
});

export const verifyBackupRepository = operation({
  method: 'POST',
  path: '/backup-repositories/:id/verify',
  auth: 'backup.manage',
  tag: 'backups',
  summary:
    'Re-read every chunk and manifest; backups using a damaged chunk are marked damaged. Answers 202 with the task',
  params: IdParams,
  success: { 202: TaskView },
  errors: [409, 422],
});

export const listBackups = operation({
  method: 'GET',
  path: '/backups',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'The catalogue: backups of the VMs in reach, newest first',
  query: Type.Object(
    {
      vm: Type.Optional(IdOrName),
      repository: Type.Optional(IdOrName),
      state: Type.Optional(StringEnum(backupStates)),
    },
    { additionalProperties: false },
  ),
  success: { 200: Items(BackupView) },
});

export const getBackup = operation({
  method: 'GET',
  path: '/backups/:id',
  auth: 'backup.read',
  tag: 'backups',
  summary: 'One backup',
  params: IdParams,
  success: { 200: BackupView },
});

export const deleteBackup = operation({
  method: 'DELETE',
  path: '/backups/:id',
  auth: 'backup.manage',
  tag: 'backups',
  summary: 'Delete a backup (its chunks go at the next garbage collection unless others use them)',
  params: IdParams,
  success: { 204: NoContent },
  errors: [409],
});

export const backUpVm = operation({
  method: 'POST',
  path: '/vms/:id/backups',
  auth: 'backup.run',
  tag: 'backups',
  summary:
    'Back the VM up now (incremental where its last backup in the repository allows); answers 202 with the task',
  params: IdParams,
  body: Type.Object({ repository: IdOrName }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: [409, 422],
});

export const restoreBackup = operation({
  method: 'POST',
  path: '/backups/:id/restore',
  auth: 'backup.restore',
  tag: 'backups',
  summary:
    "Restore the backup as a new, stopped VM on a host (new UUID and MAC addresses), or with `replace` naming the backup's own VM (stopped), over it: its disks replaced by the backup's and its settings by the backup's description, its identity kept; answers 202 with the task",
  params: IdParams,
  body: Type.Object(
    {
      host: Type.Optional(IdOrName),
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
      /** The group the VM belongs to and whose quotas it counts against (default: the caller's only group). */
      group: Type.Optional(IdOrName),
      /** Over the original: the backup's VM, named (the confirmation that its disks go). */
      replace: Type.Optional(IdOrName),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

/** A disk of a backup names: disk0, disk1, … in the order the guest saw them. */
const BackupDiskParams = Type.Object(
  { id: IdOrName, diskId: Type.String({ maxLength: 7, pattern: '^disk[0-9]{1,3}$' }) },
  { additionalProperties: false },
);

export const restoreBackupDisk = operation({
  method: 'POST',
  path: '/backups/:id/disks/:diskId/restore',
  auth: 'backup.restore',
  tag: 'backups',
  summary:
    "Restore one disk of the backup into a stopped VM (`vm`, default the backup's own) on a host with disk streams: added as a new disk, or with `replace` naming one of the VM's disks (the confirmation that its contents go) over it, its old image removed. The restored disk has the backup's capacity. Needs backup.restore on the backup's VM and vm.create (the right to change a VM) on the target VM; answers 202 with the task",
  params: BackupDiskParams,
  body: Type.Object(
    {
      /** The VM the disk goes into (default: the backup's own VM). */
      vm: Type.Optional(IdOrName),
      /** One of the VM's disks (disk0, …) whose contents the backup's disk replaces. */
      replace: Type.Optional(Type.String({ maxLength: 7, pattern: '^disk[0-9]{1,3}$' })),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

/** What a disk restore's task answers when it succeeded. */
export const DiskRestoreResult = Type.Object({
  vmId: Type.String(),
  name: Type.String(),
  backupId: Type.String(),
  /** The backup's disk restored. */
  diskId: Type.String(),
  /** The VM's disk it became: the one replaced, or the new last one. */
  vmDiskId: Type.String(),
  /** The new image on the VM's host. */
  path: Type.String(),
  capacityBytes: Type.Integer(),
  replaced: Type.Boolean(),
});
export type DiskRestoreResult = Static<typeof DiskRestoreResult>;

/** How a backed-up disk is handed out: the guest's bytes (raw) or a qcow2 of what holds data. */
export const DiskImageFormat = StringEnum(['raw', 'qcow2'] as const);
export type DiskImageFormat = Static<typeof DiskImageFormat>;

export const downloadBackupDisk = operation({
  method: 'POST',
  path: '/backups/:id/disks/:diskId/download',
  auth: 'backup.restore',
  tag: 'backups',
  summary:
    "One disk of the backup as a raw image (the guest's bytes, zeroes included) or a qcow2 image (`format=qcow2`: what holds data, laid out as it is sent), checked chunk by chunk as it is sent: a damaged chunk ends the answer short of its Content-Length and marks the backup damaged. A POST, so that every download is audited",
  params: BackupDiskParams,
  query: Type.Object({ format: Type.Optional(DiskImageFormat) }, { additionalProperties: false }),
  success: {
    200: Type.String({
      format: 'binary',
      description: 'The raw or qcow2 image; Content-Disposition names the file',
    }),
  },
  errors: [409],
  binary: true,
});

export const DiskDownloadParams = Type.Object(
  { id: IdOrName, diskId: Type.String({ maxLength: 7, pattern: '^disk[0-9]{1,3}$' }) },
  { additionalProperties: false },
);

export const DownloadTicket = Type.Object({
  ticket: Type.String(),
  /** Where to GET the file (under /api/v1), with no other credential, once, before `expiresAt`. */
  path: Type.String(),
  expiresAt: Type.Number(),
  fileName: Type.String(),
  sizeBytes: Type.Integer({ minimum: 0 }),
});
export type DownloadTicket = Static<typeof DownloadTicket>;

export const createBackupDownloadTicket = operation({
  method: 'POST',
  path: '/backups/:id/disks/:diskId/download-tickets',
  auth: 'backup.restore',
  tag: 'backups',
  summary:
    'A single-use ticket (60 s) to download one disk of the backup, raw or qcow2, with a plain GET of the path it names (how a browser saves a file: no bearer token). The ticket is the credential: a token revoked or a permission withdrawn since ends it. The download is audited when the ticket is used',
  params: DiskDownloadParams,
  body: Type.Object({ format: Type.Optional(DiskImageFormat) }, { additionalProperties: false }),
  success: { 201: DownloadTicket },
  errors: [409],
});

export const downloadWithTicket = operation({
  method: 'GET',
  path: '/downloads/:ticket',
  auth: 'public',
  tag: 'backups',
  summary:
    "The backed-up disk a download ticket was issued for, as a raw or qcow2 file; the single-use ticket in the path is the credential (401 when unknown, used or expired). Audited as backup.download by the ticket's user",
  params: Type.Object(
    { ticket: Type.String({ minLength: 16, maxLength: 64 }) },
    { additionalProperties: false },
  ),
  success: {
    200: Type.String({
      format: 'binary',
      description: 'The raw or qcow2 image; Content-Disposition names the file',
    }),
  },
  errors: [401, 403, 409],
  binary: true,
});

export const testBackup = operation({
  method: 'POST',
  path: '/backups/:id/test',
  auth: 'backup.restore',
  tag: 'backups',
  summary:
    'A restore test: the backup restored on a host as a VM with no network, started, its serial console watched for `marker` (a regular expression, default a login prompt) up to `timeoutSeconds` (default 300), then removed with its disks; answers 202 with the task, which fails with ZEN_BACKUP_RESTORE_TEST_FAILED when the guest did not come up',
  params: IdParams,
  body: Type.Object(
    {
      host: IdOrName,
      marker: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
      timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
      group: Type.Optional(IdOrName),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

const Keep = Type.Optional(Type.Integer({ minimum: 0, maximum: 100000 }));
/** What a retention keeps (prune, and a backup job's own backups). */
export const RetentionRules = {
  last: Keep,
  hourly: Keep,
  daily: Keep,
  weekly: Keep,
  monthly: Keep,
  yearly: Keep,
  timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
};

export const pruneBackupRepository = operation({
  method: 'POST',
  path: '/backup-repositories/:id/prune',
  auth: 'backup.manage',
  tag: 'backups',
  summary:
    "Delete the backups a retention does not keep, each VM's on their own (keep the newest `last`, and the newest of each of the newest N hours, days, ISO weeks, months, years in `timeZone`); `dryRun` only says which. Answers 202 with the task",
  params: IdParams,
  body: Type.Object(
    {
      vm: Type.Optional(IdOrName),
      ...RetentionRules,
      dryRun: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

export const collectBackupGarbage = operation({
  method: 'POST',
  path: '/backup-repositories/:id/garbage-collect',
  auth: 'backup.manage',
  tag: 'backups',
  summary:
    'Remove the chunks no backup names any more (safe beside backups being written: chunks touched after the oldest running backup began, less `graceSeconds` for hosts’ clocks, default 300, stay). Answers 202 with the task',
  params: IdParams,
  body: Type.Object(
    { graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })) },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

export const repositoryWorks = ['verify', 'garbage-collect'] as const;

export const ScheduleInput = Type.Object(
  {
    schedule: Type.String({
      minLength: 1,
      maxLength: 128,
      description:
        'a cron pattern: five fields (minute hour day month weekday), or six with seconds first; @daily and the like',
    }),
    timeZone: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'an IANA time zone (default UTC)' }),
    ),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ScheduleInput = Static<typeof ScheduleInput>;

export const ScheduleView = Type.Object({
  repository: Type.Object({ id: Type.String(), name: Type.String() }),
  work: StringEnum(repositoryWorks),
  schedule: Type.String(),
  timeZone: Type.String(),
  enabled: Type.Boolean(),
  /** The next slots (at most three) while enabled. */
  nextRuns: Type.Array(Instant),
  lastRun: Type.Union([
    Type.Object({
      taskId: Type.String(),
      state: Type.String(),
      startedAt: NullableInstant,
      endedAt: NullableInstant,
    }),
    Type.Null(),
  ]),
});
export type ScheduleView = Static<typeof ScheduleView>;

/** The three operations on a repository's schedule for one kind of upkeep. */
function scheduleOperations(work: (typeof repositoryWorks)[number], doing: string) {
  const path = `/backup-repositories/:id/${work}-schedule` as const;
  return {
    get: operation({
      method: 'GET',
      path,
      auth: 'backup.read',
      tag: 'backups',
      summary: `A repository's ${doing} schedule, its next slots and its last scheduled run`,
      params: IdParams,
      success: { 200: ScheduleView },
    }),
    set: operation({
      method: 'PUT',
      path,
      auth: 'backup.manage',
      tag: 'backups',
      summary: `${doing[0]!.toUpperCase()}${doing.slice(1)} on a schedule (a cron pattern in a time zone): each slot runs the task as the system; a slot that comes while it runs is passed`,
      params: IdParams,
      body: ScheduleInput,
      success: { 200: ScheduleView },
    }),
    remove: operation({
      method: 'DELETE',
      path,
      auth: 'backup.manage',
      tag: 'backups',
      summary: `${doing[0]!.toUpperCase()}${doing.slice(1)} on demand only`,
      params: IdParams,
      success: { 204: NoContent },
    }),
  };
}

export const listRepositorySchedules = operation({
  method: 'GET',
  path: '/backup-repositories/:id/schedules',
  auth: 'backup.read',
  tag: 'backups',
  summary: "A repository's schedules (verify, garbage collection); its other upkeep runs on demand",
  params: IdParams,
  success: { 200: Items(ScheduleView) },
});

const verifyOperations = scheduleOperations('verify', 'verifying the repository');
export const getVerifySchedule = verifyOperations.get;
export const setVerifySchedule = verifyOperations.set;
export const removeVerifySchedule = verifyOperations.remove;
const collectOperations = scheduleOperations(
  'garbage-collect',
  'collecting the repository’s garbage',
);
export const getGarbageCollectSchedule = collectOperations.get;
export const setGarbageCollectSchedule = collectOperations.set;
export const removeGarbageCollectSchedule = collectOperations.remove;
