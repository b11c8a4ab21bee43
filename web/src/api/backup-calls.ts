/**
 * The backup calls of the public API (src/api/backups.ts, src/api/backup-jobs.ts): the catalogue
 * of a VM's backups, backing up and restoring as tasks, the repositories with their usage and
 * verify, and backup jobs.
 */
import type {
  BackupRepositoryUsageView,
  BackupRepositoryView,
  BackupView,
  DiskImageFormat,
  DiskRestoreResult,
  DownloadTicket,
  restoreBackupDisk as restoreBackupDiskOperation,
  ScheduleView,
} from '../../../src/api/backups.ts';
import type { BodyOf } from '../../../src/api/operation.ts';
import type { BackupJobView } from '../../../src/api/backup-jobs.ts';
import type { ApiClient } from './client.ts';
import type { TaskDetail } from './vm-types.ts';

export type {
  BackupJobView,
  DiskRestoreResult,
  BackupRepositoryUsageView,
  BackupRepositoryView,
  BackupView,
  DiskImageFormat,
  ScheduleView,
};

/** Full when every disk was read whole; incremental when any was read from its checkpoint. */
export type BackupScope = 'full' | 'incremental';

export function scopeOf(backup: BackupView): BackupScope {
  return backup.disks.some((disk) => disk.scope === 'changed') ? 'incremental' : 'full';
}

/** A backup.restore task's result (the contract leaves task results untyped). */
export interface RestoreResult {
  vmId: string | null;
  name: string;
  hostId: string;
}

/** A backup.verify task's result. */
export interface VerifyResult {
  checkedBackups: number;
  checkedChunks: number;
  damaged: Array<{ backupId: string; chunks: string[]; reason: string }>;
  damagedChunks: string[];
}

const repositoryPath = (id: string) => `/backup-repositories/${encodeURIComponent(id)}`;

/** A VM's backups, newest first. */
export async function backupsOfVm(
  client: ApiClient,
  vmId: string,
  signal?: AbortSignal,
): Promise<BackupView[]> {
  const params = new URLSearchParams({ vm: vmId });
  return client.items<BackupView>(`/backups?${params.toString()}`, signal);
}

export function backUpVm(client: ApiClient, vmId: string, repository: string): Promise<TaskDetail> {
  return client.call('POST', `/vms/${encodeURIComponent(vmId)}/backups`, { repository });
}

export function restoreBackup(
  client: ApiClient,
  backupId: string,
  target: { host: string; name: string } | { replace: string },
): Promise<TaskDetail> {
  return client.call('POST', `/backups/${encodeURIComponent(backupId)}/restore`, target);
}

/** One disk of a backup into a stopped VM: added, or over the VM's disk `replace` names. */
export function restoreBackupDisk(
  client: ApiClient,
  backupId: string,
  diskId: string,
  target: BodyOf<typeof restoreBackupDiskOperation>,
): Promise<TaskDetail> {
  return client.call(
    'POST',
    `/backups/${encodeURIComponent(backupId)}/disks/${encodeURIComponent(diskId)}/restore`,
    target,
  );
}

export async function backupRepositories(
  client: ApiClient,
  signal?: AbortSignal,
): Promise<BackupRepositoryView[]> {
  return client.items<BackupRepositoryView>('/backup-repositories', signal);
}

export function backupRepositoryUsage(
  client: ApiClient,
  id: string,
  signal?: AbortSignal,
): Promise<BackupRepositoryUsageView> {
  return client.call('GET', repositoryPath(id), undefined, signal);
}

/** The repository's schedules (verify, garbage collection): the work without one runs on demand. */
export async function repositorySchedules(
  client: ApiClient,
  id: string,
  signal?: AbortSignal,
): Promise<ScheduleView[]> {
  return client.items<ScheduleView>(`${repositoryPath(id)}/schedules`, signal);
}

export function verifyBackupRepository(client: ApiClient, id: string): Promise<TaskDetail> {
  return client.call('POST', `${repositoryPath(id)}/verify`);
}

/** What a new job is made of (the API's body): the rest takes its defaults. */
export interface BackupJobInput {
  name: string;
  repository: string;
  selector?: string | null;
  scope?: string | null;
  schedule?: string | null;
  timeZone?: string;
  retention?: BackupJobView['retention'];
  concurrency?: { perHost?: number; perRepository?: number };
}

/** A backup.job task's result: each VM's backup, those skipped, the backups pruned. */
export interface JobRunResult {
  vms: Array<{ vmName: string; state: string; backupId?: string; scope?: string }>;
  skipped: Array<{ vmName: string; reason: string }>;
  pruned: string[];
}

const jobPath = (id: string) => `/backup-jobs/${encodeURIComponent(id)}`;

export async function backupJobs(
  client: ApiClient,
  signal?: AbortSignal,
): Promise<BackupJobView[]> {
  return client.items<BackupJobView>('/backup-jobs', signal);
}

export function createBackupJob(client: ApiClient, input: BackupJobInput): Promise<BackupJobView> {
  return client.call('POST', '/backup-jobs', input);
}

/** Changes a job (its name stays): only what is given. */
export function updateBackupJob(
  client: ApiClient,
  id: string,
  changes: Partial<Omit<BackupJobInput, 'name'>>,
): Promise<BackupJobView> {
  return client.call('PATCH', jobPath(id), changes);
}

export function setBackupJobEnabled(
  client: ApiClient,
  id: string,
  enabled: boolean,
): Promise<BackupJobView> {
  return client.call('PATCH', jobPath(id), { enabled });
}

export function deleteBackupJob(client: ApiClient, id: string): Promise<BackupJobView> {
  return client.call('DELETE', jobPath(id));
}

export function runBackupJob(client: ApiClient, id: string): Promise<TaskDetail> {
  return client.call('POST', `${jobPath(id)}/run`);
}

/** A single-use ticket to download one disk of a backup with a plain GET (a browser's download). */
export function backupDownloadTicket(
  client: ApiClient,
  backupId: string,
  diskId: string,
  format: DiskImageFormat,
): Promise<DownloadTicket> {
  return client.call(
    'POST',
    `/backups/${encodeURIComponent(backupId)}/disks/${encodeURIComponent(diskId)}/download-tickets`,
    { format },
  );
}
