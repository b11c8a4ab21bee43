/**
 * Backup as Zenith runs it: repositories registered by path (only inside the backup roots), the
 * catalogue of their backups, and backups, restores and verifies as tasks.
 *
 * A backup reads each disk of the VM through its family's disk-stream facet — only what changed
 * since the VM's last backup in that repository where the disk still holds that backup's
 * checkpoint, in full otherwise (a lost checkpoint, a resized disk, no earlier backup) — into the
 * repository, then writes the manifest with the VM's portable description. A task run again after
 * a crash first looks for the manifest it may have written (the manifest names its task): a
 * backup is never made twice, and one cut off leaves only chunks garbage collection removes.
 *
 * A restore writes every disk of a backup as a new image on the chosen host and defines a new VM
 * there from the backup's description (a new UUID, name and MAC addresses, so it never passes for
 * the original), stopped. Its paths and identity are chosen when it is asked, so a run after a
 * crash replaces what the cut-off run wrote and finds the VM if it was already defined.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { Type, type Static } from 'typebox';
import type { DiskImageFormat } from '../../api/backups.js';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { Mutex } from '../../core/mutex.js';
import { pathWithinRoots } from '../../core/paths.js';
import type { SecretBox } from '../../core/secret-box.js';
import {
  checkpointTagged,
  facetOf,
  REPLICA_CHECKPOINT_TAG,
  requireFacet,
  type DiskReader,
  type DiskStreamFacet,
  type PortableDisk,
  type PortableVm,
} from '../../hypervisors/driver.js';
import type { ActionContext } from '../../hypervisors/driver-types.js';
import type { Store, Tx } from '../../store/store.js';
import { quotaHoldParams, type QuotaGate } from '../quotas/quota-gate.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';
import {
  BackupCatalogue,
  type CatalogueBackup,
  type CatalogueFilter,
  type RepositoryRecord,
} from './backup-catalogue.js';
import { diskBytes, takeBackup } from './disk-backup.js';
import { DiskRestore, type DiskRestoreRequest } from './disk-restore.js';
import { qcow2Bytes, qcow2Plan } from './qcow2-stream.js';
import { watchFromTheStart } from './console-watch.js';
import { applyRetention, checkRetention, type Retention } from './retention.js';
import { manifestDisk, type BackupManifest } from './repository/manifest.js';
import { BackupRepository, type VerifyReport } from './repository/repository.js';
import { progressOver, restorePaths, writeRestoredDisk } from './restore-paths.js';

export interface BackupServiceDeps {
  store: Store;
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  secrets: SecretBox;
  clock: Clock;
  logger: Logger;
  /** Directories repositories must lie in (ZENITH_BACKUP_ROOTS; default: the data directory's backups/). */
  roots: string[];
  /** A restored VM counts against its group's quotas, as a created or cloned one does. */
  quotas: QuotaGate;
}

export interface RepositoryRequest {
  name: string;
  path: string;
  /** A new repository's chunk size (default 4 MiB). */
  chunkSize?: number;
  /** Make a new repository encrypted (a key is made and answered once). */
  encrypted?: boolean;
  /** An existing encrypted repository's key (64 hex digits). */
  key?: string;
}

export interface RepositoryView {
  id: string;
  name: string;
  path: string;
  chunkSize: number;
  encrypted: boolean;
  createdAt: number;
  scannedAt: number | null;
  backups: number;
}

export interface RepositoryUsageView extends RepositoryView {
  usage: {
    chunks: number;
    /** Bytes the chunk files take. */
    storedBytes: number;
    /** What the backups' data would take stored one by one, uncompressed. */
    logicalBytes: number;
    /** logicalBytes over storedBytes (deduplication and compression together); null when empty. */
    dedupRatio: number | null;
    /** The file system the repository is on. */
    filesystem: { totalBytes: number; freeBytes: number };
  };
}

export interface RestoreRequest {
  /** The host (id or name) the VM is restored on; not with `replace`. */
  host?: string;
  /** The new VM's name (default: the backed-up VM's name and "-restored"). */
  name?: string;
  /** The group the VM belongs to (and whose quotas it counts against); default: the requester's only group. */
  group?: string;
  /**
   * Over the original instead: the backed-up VM (its id, resolved by the route), which must be
   * stopped; its disks are replaced by the backup's and its settings by the backup's description.
   */
  replace?: string;
}

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

const BackupParams = Type.Object({
  repositoryId: Type.String(),
  repositoryName: Type.Optional(Type.String()),
  vmName: Type.Optional(Type.String()),
  /** The job that asked for it, if one did (the catalogue lists it, and its retention applies). */
  jobId: Type.Optional(Type.String()),
});
const RestoreParams = Type.Object({
  backupId: Type.String(),
  repositoryId: Type.String(),
  hostId: Type.String(),
  hostName: Type.Optional(Type.String()),
  name: Type.String(),
  uuid: Type.String(),
  macs: Type.Array(Type.String()),
  /** Where each disk of the backup is written, in the backup's disk order. */
  paths: Type.Array(Type.String()),
  /** Over the original: the VM, and the disks it had (removed once it runs on the restored ones). */
  replace: Type.Optional(Type.Object({ vmId: Type.String(), oldPaths: Type.Array(Type.String()) })),
  ...quotaHoldParams,
});
const RestoreTestParams = Type.Object({
  ...RestoreParams.properties,
  /** What the guest writes on its serial console once it is up (a regular expression). */
  marker: Type.String(),
  timeoutSeconds: Type.Integer(),
});
const VerifyParams = Type.Object({
  repositoryId: Type.String(),
  repositoryName: Type.Optional(Type.String()),
});
const RetentionParams = Type.Object({
  last: Type.Optional(Type.Integer()),
  hourly: Type.Optional(Type.Integer()),
  daily: Type.Optional(Type.Integer()),
  weekly: Type.Optional(Type.Integer()),
  monthly: Type.Optional(Type.Integer()),
  yearly: Type.Optional(Type.Integer()),
  timeZone: Type.Optional(Type.String()),
});
const PruneParams = Type.Object({
  repositoryId: Type.String(),
  repositoryName: Type.Optional(Type.String()),
  /** Only this VM's backups; all VMs' otherwise (each VM's on its own). */
  vmId: Type.Optional(Type.String()),
  retention: RetentionParams,
  dryRun: Type.Optional(Type.Boolean()),
});
const GarbageParams = Type.Object({
  repositoryId: Type.String(),
  repositoryName: Type.Optional(Type.String()),
  graceSeconds: Type.Optional(Type.Integer()),
});

const newUuid = () => {
  const bytes = randomBytes(16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};
/** 52:54:00 as QEMU's own MACs (a locally administered convention). */
const newMac = () =>
  `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

export class BackupService {
  readonly catalogue: BackupCatalogue;
  readonly #open = new Map<string, Promise<BackupRepository>>();
  readonly #locks = new Map<string, Mutex>();
  readonly #backup: TaskKind<Static<typeof BackupParams>>;
  readonly #restore: TaskKind<Static<typeof RestoreParams>>;
  readonly #restoreTest: TaskKind<Static<typeof RestoreTestParams>>;
  readonly #verify: TaskKind<Static<typeof VerifyParams>>;
  readonly #prune: TaskKind<Static<typeof PruneParams>>;
  readonly #collect: TaskKind<Static<typeof GarbageParams>>;
  readonly #diskRestore: DiskRestore;

  constructor(private readonly deps: BackupServiceDeps) {
    this.catalogue = new BackupCatalogue(deps.store);
    this.#backup = deps.tasks.register({
      name: 'backup.create',
      params: BackupParams,
      run: async ({ task, signal, progress }) => this.#runBackup(task, { signal, progress }),
      recover: async (task) => {
        const repository = await this.#repository(task.params.repositoryId).catch(() => null);
        if (!repository) return 'interrupted';
        const made = await this.#madeBy(repository, task.id);
        if (!made) return 'retry';
        await this.catalogue.add(made);
        await this.#releaseSuperseded(made);
        return 'done';
      },
    });
    this.#restore = deps.tasks.register({
      name: 'backup.restore',
      params: RestoreParams,
      run: async ({ task, signal, progress }) =>
        deps.quotas.holdWhile(task, () => this.#runRestore(task, { signal, progress })),
      // Written again over what a cut-off run left; a VM already defined is found (ZEN_CONFLICT).
      recover: async (task) => {
        // Over the original, the VM is there all along: the run finds how far it got.
        if (task.params.replace) return 'retry';
        const restored = this.#restoredVm(task.params.uuid);
        if (!restored) return 'retry';
        await deps.quotas.settleRecovered(task, restored.id);
        return 'done';
      },
    });
    this.#restoreTest = deps.tasks.register({
      name: 'backup.test',
      params: RestoreTestParams,
      run: async ({ task, signal, progress }) =>
        deps.quotas.holdWhile(task, () => this.#runRestoreTest(task, { signal, progress })),
      // The test VM a cut-off run left is removed; the test runs again from the start (and removes
      // it first itself: a host not connected yet, an agent coming back, is no reason to fail).
      recover: async (task) => {
        await this.#removeTestVm(task.params).catch((error: unknown) =>
          this.deps.logger.warn(
            { err: error, task: task.id },
            'a cut-off restore test VM is removed when the test runs again',
          ),
        );
        return 'retry';
      },
    });
    this.#verify = deps.tasks.register({
      name: 'backup.verify',
      params: VerifyParams,
      run: async ({ task, signal, progress }) =>
        this.#runVerify(task.params.repositoryId, { signal, progress }),
      recover: async () => 'retry',
    });
    this.#prune = deps.tasks.register({
      name: 'backup.prune',
      params: PruneParams,
      run: async ({ task }) => this.#runPrune(task.params),
      // Applied again to what is left, the retention keeps the same backups.
      recover: async () => 'retry',
    });
    this.#collect = deps.tasks.register({
      name: 'backup.gc',
      params: GarbageParams,
      run: async ({ task }) => this.#runGarbageCollection(task.params),
      recover: async () => 'retry',
    });
    this.#diskRestore = new DiskRestore({
      inventory: deps.inventory,
      connections: deps.connections,
      tasks: deps.tasks,
      clock: deps.clock,
      logger: deps.logger,
      catalogue: this.catalogue,
      quotas: deps.quotas,
      repository: (id) => this.#repository(id),
      undamaged: (backupId) => this.#undamaged(backupId, 'restored'),
    });
  }

  // —— repositories ——

  async addRepository(
    request: RepositoryRequest,
  ): Promise<{ repository: RepositoryView; key: string | null }> {
    if (!namePattern.test(request.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${request.name}' is not a valid repository name (letters, digits, . _ -, at most 63)`,
        { name: request.name },
      );
    const path = pathWithinRoots(request.path, this.deps.roots, 'the backup roots');
    const known = await this.catalogue.repositories();
    if (known.some((r) => r.name === request.name))
      throw new ZenithError('ZEN_CONFLICT', `a repository is named '${request.name}' already`, {
        name: request.name,
      });
    if (known.some((r) => r.path === path))
      throw new ZenithError('ZEN_CONFLICT', `${path} is registered already`, { path });
    let key = request.key ? Buffer.from(request.key, 'hex') : undefined;
    if (request.key !== undefined && (key!.length !== 32 || !/^[0-9a-f]{64}$/i.test(request.key)))
      throw new ZenithError('ZEN_BAD_REQUEST', 'a repository key is 64 hex digits', {});
    let made = false;
    let repository: BackupRepository;
    const exists = (() => {
      try {
        return readdirSync(path).includes('zenith-backup-repository.json');
      } catch {
        return false;
      }
    })();
    if (exists) {
      if (request.encrypted !== undefined || request.chunkSize !== undefined)
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `${path} holds a repository already: it is registered as it is (its key if it is encrypted, nothing else)`,
          { path },
        );
      repository = await BackupRepository.open(path, key ? { key } : {});
    } else {
      if (request.encrypted && !key) {
        key = randomBytes(32);
        made = true;
      }
      if (!request.encrypted && key)
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          'a key is given only for an encrypted repository (encrypted: true)',
          {},
        );
      repository = await BackupRepository.create(path, {
        ...(request.chunkSize !== undefined ? { chunkSize: request.chunkSize } : {}),
        ...(key ? { key } : {}),
      });
    }
    if (known.some((r) => r.id === repository.config.id))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `the repository at ${path} is registered already under another path`,
        { id: repository.config.id },
      );
    const record: RepositoryRecord = {
      id: repository.config.id,
      name: request.name,
      path,
      chunkSize: repository.config.chunkSize,
      keySealed: key ? this.deps.secrets.seal(key.toString('hex')) : null,
      createdAt: this.deps.clock.now(),
      scannedAt: null,
    };
    await this.catalogue.addRepository(record);
    this.#open.set(record.id, Promise.resolve(repository));
    await this.scan(record.id);
    return {
      repository: await this.#view((await this.catalogue.repository(record.id))!),
      // Answered once, never again: without it the repository cannot be read elsewhere.
      key: made ? key!.toString('hex') : null,
    };
  }

  async repositories(): Promise<RepositoryView[]> {
    return Promise.all((await this.catalogue.repositories()).map((r) => this.#view(r)));
  }

  /** Finds a repository by id or name. */
  async findRepository(idOrName: string): Promise<RepositoryRecord> {
    const found = (await this.catalogue.repositories()).find(
      (r) => r.id === idOrName || r.name === idOrName,
    );
    if (!found)
      throw new ZenithError('ZEN_NOT_FOUND', `no backup repository '${idOrName}'`, { idOrName });
    return found;
  }

  async repositoryUsage(idOrName: string): Promise<RepositoryUsageView> {
    const record = await this.findRepository(idOrName);
    const repository = await this.#repository(record.id);
    const usage = await repository.usage();
    let fs;
    try {
      fs = statfsSync(record.path);
    } catch (error) {
      throw new ZenithError(
        'ZEN_BACKUP_REPOSITORY_INVALID',
        `the file system of ${record.path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        { root: record.path },
      );
    }
    return {
      ...(await this.#view(record)),
      usage: {
        chunks: usage.chunks,
        storedBytes: usage.storedBytes,
        logicalBytes: usage.logicalBytes,
        dedupRatio:
          usage.storedBytes > 0
            ? Math.round((usage.logicalBytes / usage.storedBytes) * 100) / 100
            : null,
        filesystem: { totalBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize },
      },
    };
  }

  /** Forgets a repository (its files stay: registered again, its backups come back). */
  async removeRepository(idOrName: string): Promise<void> {
    const record = await this.findRepository(idOrName);
    const unfinished = [
      ...(await this.deps.tasks.list({ state: 'queued', limit: 1000 })),
      ...(await this.deps.tasks.list({ state: 'running', limit: 1000 })),
    ];
    const running = unfinished.filter(
      (task) =>
        (task.kind === 'backup.create' ||
          task.kind === 'backup.restore' ||
          task.kind === 'backup.verify') &&
        (task.params as { repositoryId?: string }).repositoryId === record.id,
    );
    if (running.length > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${record.name} is in use by ${running.length} task(s): wait for them`,
        { tasks: running.map((t) => t.id) },
      );
    const jobs = await this.deps.store.db
      .selectFrom('backup_jobs')
      .select('name')
      .where('repository_id', '=', record.id)
      .execute();
    if (jobs.length > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${record.name} is where backup job(s) ${jobs.map((j) => j.name).join(', ')} write: remove or change them first`,
        { jobs: jobs.map((j) => j.name) },
      );
    await this.catalogue.removeRepository(record.id);
    this.#open.delete(record.id);
  }

  /** Reads the repository's manifests into the catalogue. */
  async scan(repositoryId: string): Promise<void> {
    const repository = await this.#repository(repositoryId);
    // One at a time with deletions: a manifest listed before a deletion is not written back after.
    await this.#catalogueLock(repositoryId).run(async () => {
      const { backups, unreadable } = await repository.listBackups();
      await this.catalogue.sync(repositoryId, backups, unreadable, this.deps.clock.now());
    });
  }

  #catalogueLock(repositoryId: string): Mutex {
    let lock = this.#locks.get(repositoryId);
    if (!lock) this.#locks.set(repositoryId, (lock = new Mutex()));
    return lock;
  }

  // —— the catalogue ——

  list(filter: CatalogueFilter = {}): Promise<CatalogueBackup[]> {
    return this.catalogue.list(filter);
  }

  async get(backupId: string): Promise<CatalogueBackup> {
    const found = await this.catalogue.get(backupId);
    if (!found) throw new ZenithError('ZEN_NOT_FOUND', `no backup ${backupId}`, { id: backupId });
    return found;
  }

  /** Deletes a backup (its manifest): its chunks go at the next garbage collection unless shared. */
  async remove(backupId: string): Promise<void> {
    const backup = await this.get(backupId);
    const repository = await this.#repository(backup.repositoryId);
    // The newest backup's checkpoints would stay in the disks for good: the next backup reads
    // from the one before, whose checkpoints are gone, so in full.
    const [newest] = await this.catalogue.list({
      vmId: backup.vmId,
      repositoryId: backup.repositoryId,
    });
    if (newest?.id === backup.id) await this.#releaseCheckpoints(backup);
    await this.#catalogueLock(backup.repositoryId).run(async () => {
      await repository.deleteBackup(backupId).catch((error: unknown) => {
        // A manifest already gone (or damaged beyond reading) is removed from the catalogue anyway.
        if (!isZenithError(error) || !error.code.startsWith('ZEN_BACKUP_')) throw error;
      });
      await this.catalogue.remove(backupId);
    });
  }

  // —— tasks ——

  /**
   * Backs a VM up into a repository now. A job passes its id, and `prepare` to record the task in
   * the transaction that writes it.
   */
  async backUp(
    vmId: string,
    repository: string,
    owner: Actor,
    requestId?: string,
    options: { jobId?: string; prepare?: (tx: Tx, taskId: string) => Promise<void> } = {},
  ): Promise<Task> {
    const { vm } = this.#vmTarget(vmId);
    const record = await this.findRepository(repository);
    return this.deps.tasks.submit({
      kind: this.#backup,
      targetId: vm.id,
      params: {
        repositoryId: record.id,
        repositoryName: record.name,
        vmName: vm.name,
        ...(options.jobId ? { jobId: options.jobId } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(options.prepare ? { prepare: options.prepare } : {}),
    });
  }

  /**
   * Whether a VM's family can be backed up (it has disk streams). A VM whose connection is down
   * counts as capable: a backup asked for it fails, and says why.
   */
  canBackUp(vm: ManagedObject): boolean {
    if (!vm.connectionId || !vm.externalId) return false;
    let driver;
    try {
      driver = this.deps.connections.driver(vm.connectionId);
    } catch {
      return true;
    }
    return facetOf(driver, 'diskStreams') !== undefined;
  }

  /**
   * Deletes a VM's backups made by a job that its retention does not keep (a job's run does this
   * after its backups); answers the ids pruned.
   */
  async pruneJobBackups(
    repositoryId: string,
    vmId: string,
    jobId: string,
    retention: Retention,
  ): Promise<string[]> {
    const backups = (await this.catalogue.list({ repositoryId, vmId })).filter(
      (backup) => backup.jobId === jobId,
    );
    const { prune } = applyRetention(backups, retention);
    for (const backup of prune) await this.remove(backup.id);
    return prune.map((backup) => backup.id);
  }

  /** Restores a backup as a new, stopped VM on a host. */
  /**
   * One disk of a backup as a raw image, for a download: its size, a name for the file, and its
   * bytes (checked chunk by chunk as they are read; a damaged chunk ends them early and marks the
   * backup damaged). A backup already known damaged is refused.
   */
  async download(
    backupId: string,
    diskId: string,
    format: DiskImageFormat = 'raw',
  ): Promise<{ sizeBytes: number; fileName: string; bytes: AsyncIterable<Buffer> }> {
    const backup = await this.#undamaged(backupId, 'downloaded');
    const repository = await this.#repository(backup.repositoryId);
    const manifest = await repository.readManifest(backup.id);
    const disk = manifestDisk(manifest, diskId);
    const damaged = (error: ZenithError) => this.catalogue.markDamaged([backup.id], error.message);
    const fileName = `${backup.vmName}-${diskId}-${backup.id}.${format}`.replace(
      /[^A-Za-z0-9._-]/g,
      '_',
    );
    if (format === 'raw')
      return {
        sizeBytes: disk.capacityBytes,
        fileName,
        bytes: diskBytes(repository, disk, damaged),
      };
    const plan = qcow2Plan(disk, repository.config.chunkSize);
    return {
      sizeBytes: plan.sizeBytes,
      fileName,
      bytes: qcow2Bytes(repository, disk, plan, damaged),
    };
  }

  async restore(
    backupId: string,
    request: RestoreRequest,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    if (request.replace === undefined && request.host === undefined)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'say where: a host to restore a new VM on, or replace naming the VM to restore over',
        { field: 'host' },
      );
    const { params, prepare } =
      request.replace !== undefined
        ? { params: await this.#prepareReplace(backupId, request), prepare: undefined }
        : await this.#prepareRestore(backupId, { ...request, host: request.host! }, owner);
    return this.deps.tasks.submit({
      kind: this.#restore,
      targetId: params.hostId,
      params,
      owner,
      ...(requestId ? { requestId } : {}),
      ...(prepare ? { prepare } : {}),
    });
  }

  /**
   * One disk of the backup restored into a stopped VM (the backup's own by default): added as a
   * new disk, or over the VM's disk `replace` names (disk-restore.ts).
   */
  restoreDisk(
    backupId: string,
    diskId: string,
    request: DiskRestoreRequest,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    return this.#diskRestore.submit(backupId, diskId, request, owner, requestId);
  }

  /**
   * A restore test (a health check): the backup restored on a host as a VM with no network,
   * started, its serial console watched for `marker` (a regular expression; default: a login
   * prompt) for at most `timeoutSeconds`, then stopped and removed with its disks, whatever came
   * of it. The task succeeds when the guest came up, and fails with
   * ZEN_BACKUP_RESTORE_TEST_FAILED (the console's last lines in the message) when it did not.
   */
  async restoreTest(
    backupId: string,
    request: { host: string; marker?: string; timeoutSeconds?: number; group?: string },
    owner: Actor,
    requestId?: string,
    options: { prepare?: (tx: Tx, taskId: string) => Promise<void> } = {},
  ): Promise<Task> {
    const marker = request.marker ?? 'login: *$';
    try {
      new RegExp(marker, 'm');
    } catch (error) {
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `marker is not a regular expression: ${(error as Error).message}`,
        { field: 'marker' },
      );
    }
    const timeoutSeconds = request.timeoutSeconds ?? 300;
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 3600)
      throw new ZenithError('ZEN_BAD_REQUEST', 'timeoutSeconds must be from 1 to 3600', {
        field: 'timeoutSeconds',
      });
    const backup = await this.get(backupId);
    const name = `${backup.vmName.slice(0, 40)}-test-${randomBytes(3).toString('hex')}`;
    const { params, prepare } = await this.#prepareRestore(
      backupId,
      { host: request.host, name, ...(request.group ? { group: request.group } : {}) },
      owner,
    );
    return this.deps.tasks.submit({
      kind: this.#restoreTest,
      targetId: params.hostId,
      params: { ...params, macs: [], marker, timeoutSeconds },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(prepare || options.prepare
        ? {
            prepare: async (tx: Tx, taskId: string) => {
              await prepare?.(tx, taskId);
              await options.prepare?.(tx, taskId);
            },
          }
        : {}),
    });
  }

  /**
   * A restore over the original VM: it must be the backup's own VM, still present and stopped;
   * its disks are written anew beside the old ones (in a directory of their own on its host's
   * first storage root), and it keeps its name, UUID and the MACs the backup describes.
   */
  async #prepareReplace(
    backupId: string,
    request: RestoreRequest,
  ): Promise<Static<typeof RestoreParams>> {
    if (request.host !== undefined || request.name !== undefined || request.group !== undefined)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'a restore over the original VM takes neither host, name nor group: it stays where it is, as it is named',
        {
          field:
            request.host !== undefined ? 'host' : request.name !== undefined ? 'name' : 'group',
        },
      );
    const backup = await this.#undamaged(backupId, 'restored');
    const vm = this.deps.inventory.get(request.replace!);
    if (vm.id !== backup.vmId)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `backup ${backup.id} is of ${backup.vmName}, not ${vm.name}: restore it over its own VM, or as a new VM`,
        { field: 'replace', backupVmId: backup.vmId },
      );
    if (vm.status !== 'present' || !vm.connectionId || !vm.externalId || !vm.parentId)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is not present on a host`, {
        vmId: vm.id,
      });
    if (vm.facts['power.state'] !== 'stopped')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is ${String(vm.facts['power.state'])}: stop it before its disks are replaced`,
        { vmId: vm.id, powerState: vm.facts['power.state'] },
      );
    const driver = this.deps.connections.driver(vm.connectionId);
    const streams = requireFacet(driver, 'diskStreams', 'restoring a backup');
    const portable = requireFacet(driver, 'portableVms', 'restoring a backup');
    if (!portable.redefinesStopped)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${vm.name}'s host cannot define a VM again over its own definition: restore it as a new VM`,
        { vmId: vm.id },
      );
    const current = await portable.describeVm(vm.externalId);
    const { manifest, description } = await this.#described(backup);
    const host = this.deps.inventory.get(vm.parentId);
    const paths = await restorePaths(
      host,
      streams,
      `${vm.name}-restored`,
      manifest.disks.map((disk) => disk.diskId),
    );
    return {
      backupId: backup.id,
      repositoryId: backup.repositoryId,
      hostId: host.id,
      hostName: host.name,
      name: current.name,
      uuid: current.uuid,
      macs: description.nics.map((nic) => nic.mac),
      paths,
      replace: { vmId: vm.id, oldPaths: current.disks.map((disk) => disk.location.path) },
    };
  }

  /** The backup, unless it is known damaged (ZEN_BACKUP_CHUNK_DAMAGED: it is not restored). */
  async #undamaged(backupId: string, what: 'restored' | 'downloaded'): Promise<CatalogueBackup> {
    const backup = await this.get(backupId);
    if (backup.state === 'damaged')
      throw new ZenithError(
        'ZEN_BACKUP_CHUNK_DAMAGED',
        `backup ${backup.id} is damaged (${backup.damage ?? 'verify found it'}): it is not ${what}`,
        { backupId: backup.id },
      );
    return backup;
  }

  /** The backup's manifest and the description of its VM it carries (without one, it cannot be defined again). */
  async #described(
    backup: CatalogueBackup,
  ): Promise<{ manifest: BackupManifest; description: PortableVm }> {
    const repository = await this.#repository(backup.repositoryId);
    const manifest = await repository.readManifest(backup.id);
    const description = manifest.vm.description as PortableVm | undefined;
    if (!description)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `backup ${backup.id} holds no description of its VM: it cannot be defined again`,
        { backupId: backup.id },
      );
    return { manifest, description };
  }

  /** What a restore (or a restore test) is asked with: checked, named, placed; quota reserved. */
  async #prepareRestore(
    backupId: string,
    request: RestoreRequest & { host: string },
    owner: Actor,
  ): Promise<{
    params: Static<typeof RestoreParams>;
    prepare: ((tx: Tx, taskId: string) => Promise<void>) | undefined;
  }> {
    const backup = await this.#undamaged(backupId, 'restored');
    const host = this.deps.inventory.resolve('host', request.host);
    if (host.status !== 'present' || !host.connectionId)
      throw new ZenithError('ZEN_INVALID_STATE', `${host.name} is not connected`, {
        hostId: host.id,
      });
    const driver = this.deps.connections.driver(host.connectionId);
    const streams = requireFacet(driver, 'diskStreams', 'restoring a backup');
    requireFacet(driver, 'portableVms', 'restoring a backup');
    const name = request.name ?? `${backup.vmName}-restored`;
    if (!namePattern.test(name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${name}' is not a valid VM name (letters, digits, . _ -, at most 63)`,
        { name },
      );
    const taken = this.deps.inventory.index
      .ofConnection(host.connectionId)
      .some((o) => o.kind === 'vm' && o.name === name && o.status === 'present');
    if (taken)
      throw new ZenithError('ZEN_CONFLICT', `a VM named '${name}' exists on ${host.name}`, {
        name,
      });
    const { manifest, description } = await this.#described(backup);
    const paths = await restorePaths(
      host,
      streams,
      name,
      manifest.disks.map((disk) => disk.diskId),
    );
    const group = await this.deps.quotas.owningGroup(owner, request.group);
    // What the VM takes: its CPUs and memory as described, its disks at their full size.
    const amounts = {
      vcpus: description.cpus,
      memoryBytes: description.memoryBytes,
      diskBytes: manifest.disks.reduce((sum, disk) => sum + disk.capacityBytes, 0),
      vms: 1,
    };
    return {
      params: {
        backupId: backup.id,
        repositoryId: backup.repositoryId,
        hostId: host.id,
        hostName: host.name,
        name,
        uuid: newUuid(),
        macs: description.nics.map(() => newMac()),
        paths,
        ...(group ? { group, ownerName: owner.name } : {}),
      },
      prepare: group
        ? (tx: Tx, taskId: string) => this.deps.quotas.reserve(tx, taskId, group, amounts)
        : undefined,
    };
  }

  /** Re-reads every chunk and manifest of a repository; damaged backups are marked. */
  async verify(
    repository: string,
    owner: Actor,
    requestId?: string,
    options: { prepare?: (tx: Tx, taskId: string) => Promise<void> } = {},
  ): Promise<Task> {
    const record = await this.findRepository(repository);
    return this.deps.tasks.submit({
      kind: this.#verify,
      targetId: null,
      params: { repositoryId: record.id, repositoryName: record.name },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(options.prepare ? { prepare: options.prepare } : {}),
    });
  }

  /**
   * Deletes the backups a retention does not keep (each VM's backups on their own); with `dryRun`,
   * only says which. Their chunks go at the next garbage collection.
   */
  async prune(
    repository: string,
    request: { vmId?: string; retention: Retention; dryRun?: boolean },
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    const record = await this.findRepository(repository);
    checkRetention(request.retention);
    return this.deps.tasks.submit({
      kind: this.#prune,
      targetId: null,
      params: {
        repositoryId: record.id,
        repositoryName: record.name,
        ...(request.vmId ? { vmId: request.vmId } : {}),
        retention: request.retention,
        ...(request.dryRun ? { dryRun: true } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  /**
   * Removes the chunks no backup names any more, safely beside backups being written (see the
   * repository format); backups naming a chunk that is missing are marked damaged.
   */
  async collectGarbage(
    repository: string,
    request: { graceSeconds?: number },
    owner: Actor,
    requestId?: string,
    options: { prepare?: (tx: Tx, taskId: string) => Promise<void> } = {},
  ): Promise<Task> {
    const record = await this.findRepository(repository);
    return this.deps.tasks.submit({
      kind: this.#collect,
      targetId: null,
      params: {
        repositoryId: record.id,
        repositoryName: record.name,
        ...(request.graceSeconds !== undefined ? { graceSeconds: request.graceSeconds } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(options.prepare ? { prepare: options.prepare } : {}),
    });
  }

  async #runPrune(params: Static<typeof PruneParams>): Promise<unknown> {
    await this.scan(params.repositoryId);
    const backups = await this.catalogue.list({
      repositoryId: params.repositoryId,
      ...(params.vmId ? { vmId: params.vmId } : {}),
    });
    const byVm = new Map<string, CatalogueBackup[]>();
    for (const backup of backups) byVm.set(backup.vmId, [...(byVm.get(backup.vmId) ?? []), backup]);
    const kept: string[] = [];
    const pruned: string[] = [];
    for (const list of byVm.values()) {
      const { keep, prune } = applyRetention(list, params.retention);
      kept.push(...keep.map((b) => b.id));
      pruned.push(...prune.map((b) => b.id));
    }
    if (!params.dryRun) for (const id of pruned) await this.remove(id);
    return { dryRun: params.dryRun === true, kept, pruned };
  }

  async #runGarbageCollection(params: Static<typeof GarbageParams>): Promise<unknown> {
    const repository = await this.#repository(params.repositoryId);
    const report = await repository.collectGarbage(
      params.graceSeconds !== undefined ? { graceMs: params.graceSeconds * 1000 } : {},
    );
    for (const { chunk, backups } of report.missing)
      await this.catalogue.markDamaged(backups, `chunk ${chunk} is missing`);
    return report;
  }

  async #runBackup(
    task: Task<Static<typeof BackupParams>>,
    context: ActionContext,
  ): Promise<unknown> {
    const repository = await this.#repository(task.params.repositoryId);
    const summary = (manifest: BackupManifest) => ({
      backupId: manifest.id,
      scope: manifest.disks.some((disk) => disk.scope === 'changed') ? 'incremental' : 'full',
      sizeBytes: manifest.disks.reduce((sum, disk) => sum + disk.capacityBytes, 0),
      readBytes: manifest.disks.reduce((sum, disk) => sum + disk.readBytes, 0),
      storedBytes: manifest.disks.reduce((sum, disk) => sum + disk.storedBytes, 0),
      newChunks: manifest.disks.reduce((sum, disk) => sum + disk.newChunks, 0),
      sharedChunks: manifest.disks.reduce((sum, disk) => sum + disk.sharedChunks, 0),
      // Each disk's point in time froze every file system of the guest: the most, not the sum.
      quiesced: manifest.disks.length > 0 && manifest.disks.every((disk) => disk.quiesced === true),
      frozenFileSystems: Math.max(0, ...manifest.disks.map((disk) => disk.frozenFileSystems ?? 0)),
    });
    const already = await this.#madeBy(repository, task.id);
    if (already) {
      await this.catalogue.add(already);
      await this.#releaseSuperseded(already);
      return summary(already);
    }
    const { vm, driver } = this.#vmTarget(task.targetId!);
    const streams = requireFacet(driver, 'diskStreams', 'backup');
    const portable = facetOf(driver, 'portableVms');
    const description = portable
      ? await portable.describeVm(vm.externalId!).catch((error: unknown) => {
          this.deps.logger.warn(
            { err: error, vm: vm.name },
            'a backed-up VM could not be described',
          );
          return undefined;
        })
      : undefined;
    const last = await this.catalogue.latest(vm.id, repository.config.id);
    const parent = last
      ? await repository.readManifest(last.id).catch((error: unknown) => {
          // The last backup cannot be read against: this one reads in full.
          this.deps.logger.warn({ err: error, backup: last.id }, 'the last backup is unreadable');
          return undefined;
        })
      : undefined;
    const disks = await streams.listDisks(vm.externalId!);
    await this.#releaseStrayCheckpoints(
      streams,
      vm,
      disks.map((disk) => disk.diskId),
    );
    const total = disks.reduce((sum, disk) => sum + disk.capacityBytes, 0);
    const progress = progressOver(
      total,
      this.deps.clock.now(),
      this.deps.clock,
      (update) => context.progress(update),
      'reading',
    );
    let doneBefore = 0;
    const manifest = await takeBackup(
      repository,
      {
        vm: {
          id: vm.id,
          name: vm.name,
          uuid: typeof vm.facts['vm.uuid'] === 'string' ? vm.facts['vm.uuid'] : null,
          ...(description
            ? { description: description as unknown as Record<string, unknown> }
            : {}),
        },
        task: task.id,
        ...(task.params.jobId ? { job: task.params.jobId } : {}),
        ...(parent ? { parent } : {}),
      },
      disks.map((disk, index) => ({
        diskId: disk.diskId,
        open: () => {
          doneBefore = disks.slice(0, index).reduce((sum, d) => sum + d.capacityBytes, 0);
          progress.next(disk.diskId, doneBefore);
          const from = parent?.disks.find((d) => d.diskId === disk.diskId);
          return this.#reader(streams, vm, disk.diskId, from, disk.capacityBytes, context);
        },
      })),
      {
        progress: (p) => progress.update(p),
        signal: context.signal,
        unkept: (diskId, checkpoint) =>
          streams.releaseCheckpoint(vm.externalId!, diskId, checkpoint),
      },
    );
    await this.catalogue.add(manifest);
    await this.#releaseSuperseded(manifest);
    return summary(manifest);
  }

  /** Only what changed since the last backup where the disk still has its checkpoint; else all of it. */
  async #reader(
    streams: DiskStreamFacet,
    vm: ManagedObject,
    diskId: string,
    last: BackupManifest['disks'][number] | undefined,
    capacityBytes: number,
    context: ActionContext,
  ): Promise<DiskReader> {
    if (last?.checkpoint && last.capacityBytes === capacityBytes) {
      try {
        return await streams.openReader(
          vm.externalId!,
          diskId,
          { changedSince: { name: last.checkpoint } },
          context,
        );
      } catch (error) {
        if (!isZenithError(error) || error.details.checkpoint !== 'lost') throw error;
        this.deps.logger.info(
          { vm: vm.name, diskId, why: error.details.why },
          'the checkpoint of the last backup is lost: the disk is read in full',
        );
      }
    }
    return streams.openReader(vm.externalId!, diskId, {}, context);
  }

  /**
   * A read killed before its backup was kept (the control plane or the task killed) leaves its
   * checkpoint in the disk, recording every write for nothing: any checkpoint no backup of the VM
   * names (in any repository) is ended before the next backup reads — replication's excepted.
   */
  async #releaseStrayCheckpoints(
    streams: DiskStreamFacet,
    vm: ManagedObject,
    diskIds: string[],
  ): Promise<void> {
    const named = new Set(
      (await this.catalogue.list({ vmId: vm.id })).flatMap((backup) =>
        backup.disks.flatMap((disk) => (disk.checkpoint ? [disk.checkpoint] : [])),
      ),
    );
    for (const diskId of diskIds)
      for (const checkpoint of await streams.listCheckpoints(vm.externalId!, diskId))
        // Replication's checkpoints are its own (it releases its strays itself).
        if (
          !named.has(checkpoint.name) &&
          !checkpointTagged(checkpoint.name, REPLICA_CHECKPOINT_TAG)
        ) {
          this.deps.logger.info(
            { vm: vm.name, diskId, checkpoint: checkpoint.name },
            'a checkpoint no backup names (its read was cut off) is released',
          );
          await streams.releaseCheckpoint(vm.externalId!, diskId, checkpoint);
        }
  }

  /** Ends the checkpoints a backup's reads left in the VM's disks (best effort: logged). */
  async #releaseCheckpoints(backup: CatalogueBackup, keep: string[] = []): Promise<void> {
    const vm = this.deps.inventory.index.get(backup.vmId);
    if (!vm?.connectionId || !vm.externalId || vm.status !== 'present') return;
    try {
      const streams = requireFacet(
        this.deps.connections.driver(vm.connectionId),
        'diskStreams',
        'backup',
      );
      for (const disk of backup.disks)
        if (disk.checkpoint && !keep.includes(disk.checkpoint))
          await streams.releaseCheckpoint(vm.externalId, disk.diskId, { name: disk.checkpoint });
    } catch (error) {
      this.deps.logger.warn(
        { err: error, backup: backup.id },
        "releasing a backup's checkpoints failed (the next backup of the VM reads in full)",
      );
    }
  }

  /**
   * Once a backup is safe, the checkpoints of the VM's earlier backups in that repository are no
   * longer read from (the next backup reads from this one's): they end. Those of backups in other
   * repositories stay (each repository has its own chain).
   */
  async #releaseSuperseded(manifest: BackupManifest): Promise<void> {
    const vm = this.deps.inventory.index.get(manifest.vm.id);
    if (!vm?.connectionId || !vm.externalId || vm.status !== 'present') return;
    const earlier = new Set(
      (await this.catalogue.list({ vmId: vm.id, repositoryId: manifest.repositoryId }))
        .filter((backup) => backup.id !== manifest.id)
        .flatMap((backup) =>
          backup.disks.flatMap((disk) => (disk.checkpoint ? [disk.checkpoint] : [])),
        ),
    );
    const own = new Set(
      manifest.disks.flatMap((disk) => (disk.checkpoint ? [disk.checkpoint] : [])),
    );
    try {
      const streams = requireFacet(
        this.deps.connections.driver(vm.connectionId),
        'diskStreams',
        'backup',
      );
      for (const disk of manifest.disks)
        for (const checkpoint of await streams.listCheckpoints(vm.externalId, disk.diskId))
          if (earlier.has(checkpoint.name) && !own.has(checkpoint.name))
            await streams.releaseCheckpoint(vm.externalId, disk.diskId, checkpoint);
    } catch (error) {
      this.deps.logger.warn(
        { err: error, backup: manifest.id },
        "releasing the earlier backups' checkpoints failed (they are released after the next backup)",
      );
    }
  }

  async #runRestore(
    task: Task<Static<typeof RestoreParams>>,
    context: ActionContext,
    options: { isolated?: boolean; start?: boolean; paused?: boolean } = {},
  ): Promise<{ vmId: string | null; name: string; hostId: string; backupId?: string }> {
    const { params } = task;
    if (params.replace) return this.#runReplace(task, context);
    const done = this.#restoredVm(params.uuid);
    if (done) return { vmId: done.id, name: done.name, hostId: params.hostId };
    return this.#restoreAs(task, context, options);
  }

  /**
   * Over the original: the backup's disks written beside the VM's, then the VM defined again on
   * them (its stopped definition goes, never a running one: ZEN_CONFLICT), then its old disks
   * removed. Run again after a cut-off, it finds how far the last run got by the VM's disks.
   */
  async #runReplace(
    task: Task<Static<typeof RestoreParams>>,
    context: ActionContext,
  ): Promise<{ vmId: string | null; name: string; hostId: string; backupId?: string }> {
    const { params } = task;
    const { vmId, oldPaths } = params.replace!;
    const vm = this.deps.inventory.get(vmId);
    const host = this.deps.inventory.get(params.hostId);
    if (!host.connectionId || host.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `${host.name} is not connected`);
    const driver = this.deps.connections.driver(host.connectionId);
    // Missing from its host only if a cut-off run was stopped between letting go of its old
    // definition and making the new one: it is defined again from the backup, as planned.
    // On another host now (moved meanwhile): never defined a second time here.
    if (vm.connectionId !== host.connectionId)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is on another host now: it is not restored over on ${host.name}`,
        { vmId: vm.id },
      );
    const present = vm.status === 'present';
    const now =
      present && vm.externalId
        ? await requireFacet(driver, 'portableVms', 'restoring a backup').describeVm(vm.externalId)
        : undefined;
    const swapped =
      now !== undefined &&
      now.disks.length === params.paths.length &&
      now.disks.every((disk, index) => disk.location.path === params.paths[index]);
    let result = { vmId: vm.id as string | null, name: vm.name, hostId: params.hostId };
    if (!swapped) {
      if (present && vm.facts['power.state'] !== 'stopped')
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `${vm.name} was started meanwhile: its disks are not replaced while it runs`,
          { vmId: vm.id },
        );
      result = await this.#restoreAs(task, context, {});
    }
    // The disks it ran on before, no longer any VM's.
    const streams = requireFacet(driver, 'diskStreams', 'restoring a backup');
    await streams.removeImages(
      oldPaths.filter((path) => !params.paths.includes(path)).map((path) => ({ path })),
    );
    return { ...result, backupId: params.backupId };
  }

  /** The backup's disks written at the task's paths, and a VM defined on them from its description. */
  async #restoreAs(
    task: Task<Static<typeof RestoreParams>>,
    context: ActionContext,
    options: { isolated?: boolean; start?: boolean; paused?: boolean },
  ): Promise<{ vmId: string | null; name: string; hostId: string; backupId?: string }> {
    const { params } = task;
    const repository = await this.#repository(params.repositoryId);
    const manifest = await repository.readManifest(params.backupId);
    const description = manifest.vm.description as PortableVm | undefined;
    if (!description || description.disks.length !== manifest.disks.length)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `backup ${manifest.id} does not describe its VM's disks: it cannot be defined again`,
      );
    const host = this.deps.inventory.get(params.hostId);
    if (!host.connectionId || host.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `${host.name} is not connected`);
    const driver = this.deps.connections.driver(host.connectionId);
    const streams = requireFacet(driver, 'diskStreams', 'restoring a backup');
    const portable = requireFacet(driver, 'portableVms', 'restoring a backup');
    const total = manifest.disks.reduce((sum, disk) => sum + disk.capacityBytes, 0);
    const progress = progressOver(
      total,
      this.deps.clock.now(),
      this.deps.clock,
      (update) => context.progress(update),
      'writing',
    );
    const written: PortableDisk[] = [];
    let doneBefore = 0;
    for (const [index, disk] of manifest.disks.entries()) {
      progress.next(disk.diskId, doneBefore);
      written.push(
        await writeRestoredDisk(repository, disk, streams, params.paths[index]!, context, {
          progress: (p) => progress.update(p),
          damaged: (error) => this.catalogue.markDamaged([manifest.id], error.message),
        }),
      );
      doneBefore += disk.capacityBytes;
    }
    const restored: PortableVm = {
      ...description,
      uuid: params.uuid,
      name: params.name,
      disks: description.disks.map((disk, index) => ({
        ...disk,
        location: written[index]!.location,
        format: written[index]!.format,
        owned: true,
        readOnly: false,
      })),
      // Isolated (a restore test): no network at all, and a serial console to watch.
      nics: options.isolated
        ? []
        : description.nics.map((nic, index) => ({ ...nic, mac: params.macs[index]! })),
      ...(options.isolated ? { serialConsole: true } : {}),
    };
    let arrived;
    try {
      arrived = await portable.runVm(
        restored,
        {
          start: options.start === true,
          // Held until its console is watched, where the host can (a restore test).
          ...(options.paused && portable.startsPaused ? { paused: true } : {}),
          ...(task.params.replace ? { over: true } : {}),
        },
        context,
      );
    } catch (error) {
      // Defined by a run whose answer was lost: the inventory has it by now.
      // (Over the original, the VM with that UUID is the original itself: the conflict stands.)
      const found =
        isZenithError(error) &&
        error.code === 'ZEN_CONFLICT' &&
        !params.replace &&
        this.#restoredVm(params.uuid);
      if (found) return { vmId: found.id, name: found.name, hostId: params.hostId };
      throw error;
    }
    await this.deps.inventory.applyChanges(host.connectionId, [arrived]);
    const vmId = this.deps.inventory.index.idForExternal(
      host.connectionId,
      'vm',
      arrived.externalId,
    );
    return { vmId: vmId ?? null, name: params.name, hostId: params.hostId, backupId: manifest.id };
  }

  async #runRestoreTest(
    task: Task<Static<typeof RestoreTestParams>>,
    context: ActionContext,
  ): Promise<unknown> {
    const { params } = task;
    const started = this.deps.clock.now();
    try {
      // A test VM left by an earlier attempt goes first: each attempt boots its own.
      await this.#removeTestVm(params);
      const restored = await this.#runRestore(task, context, {
        isolated: true,
        start: true,
        paused: true,
      });
      const vm = restored.vmId ? this.deps.inventory.index.get(restored.vmId) : undefined;
      if (!vm?.connectionId || !vm.externalId)
        throw new ZenithError('ZEN_INVALID_STATE', 'the test VM is not in the inventory');
      const driver = this.deps.connections.driver(vm.connectionId);
      if (!driver.openConsole)
        throw new ZenithError(
          'ZEN_UNSUPPORTED',
          `${params.hostName ?? params.hostId} offers no serial console to watch a test VM on`,
        );
      context.progress({ percent: 90, message: `waiting for ${params.marker} on the console` });
      // Started with its guest held (where the host can): it runs once its console is read, so
      // that nothing it prints is missed.
      const booted = await watchFromTheStart(
        await driver.openConsole(vm.externalId, 'serial'),
        new RegExp(params.marker, 'm'),
        params.timeoutSeconds * 1000,
        async () => {
          if (vm.facts['power.state'] !== 'suspended') return;
          const resumed = await driver.resumeVm(vm.externalId!, context);
          await this.deps.inventory.applyChanges(vm.connectionId!, [resumed]);
        },
        context.signal,
      );
      if (!booted.matched)
        throw new ZenithError(
          'ZEN_BACKUP_RESTORE_TEST_FAILED',
          `the guest restored from backup ${params.backupId} did not write /${params.marker}/ on its console in ${params.timeoutSeconds} s; its last output: ${JSON.stringify(booted.tail)}`,
          { backupId: params.backupId },
        );
      return {
        backupId: params.backupId,
        hostId: params.hostId,
        booted: true,
        bootSeconds: Math.round((this.deps.clock.now() - started) / 100) / 10,
        line: booted.line,
      };
    } finally {
      await this.#removeTestVm(params).catch((error: unknown) =>
        this.deps.logger.error(
          { err: error, uuid: params.uuid },
          'a restore test VM could not be removed',
        ),
      );
    }
  }

  /** Stops and deletes a restore test's VM (found by its UUID) and its disks, if it is there. */
  async #removeTestVm({
    uuid,
    paths,
    hostId,
  }: {
    uuid: string;
    paths: string[];
    hostId: string;
  }): Promise<void> {
    const vm = this.#restoredVm(uuid);
    if (vm?.connectionId && vm.externalId) {
      const driver = this.deps.connections.driver(vm.connectionId);
      const context: ActionContext = {
        signal: new AbortController().signal,
        progress: () => undefined,
      };
      if (vm.facts['power.state'] !== 'stopped')
        await driver.stopVm(vm.externalId, context, { force: true }).catch(() => undefined);
      await driver.deleteVm(vm.externalId, context);
      await this.deps.inventory.applyChanges(
        vm.connectionId,
        [],
        [{ kind: 'vm', externalId: vm.externalId }],
      );
    }
    // Disks written before the VM was defined (a run cut off in between), on the test's host.
    const host = this.deps.inventory.index.get(hostId);
    if (!host?.connectionId) return; // removed from the inventory, and its disks with it
    await requireFacet(
      this.deps.connections.driver(host.connectionId),
      'diskStreams',
      "removing a restore test's disks",
    ).removeImages(paths.map((path) => ({ path })));
  }

  async #runVerify(repositoryId: string, context: ActionContext): Promise<VerifyReport> {
    const repository = await this.#repository(repositoryId);
    await this.scan(repositoryId);
    const report = await repository.verify({
      signal: context.signal,
      progress: (checked, total) =>
        context.progress({
          percent: total === 0 ? 100 : Math.floor((checked / total) * 100),
          message: `${checked} of ${total} chunks checked`,
          details: { checkedChunks: checked, totalChunks: total },
        }),
    });
    const damaged = report.damaged.map((d) => d.backupId);
    await this.catalogue.markOk(repositoryId, damaged);
    for (const entry of report.damaged)
      await this.catalogue.markDamaged([entry.backupId], entry.reason);
    return report;
  }

  /** The VM a restore defined, found by the UUID it was given. */
  #restoredVm(uuid: string): ManagedObject | undefined {
    return this.deps.inventory.index
      .ofKind('vm')
      .find((vm) => vm.facts['vm.uuid'] === uuid && vm.status === 'present');
  }

  async #madeBy(repository: BackupRepository, taskId: string): Promise<BackupManifest | undefined> {
    const { backups } = await repository.listBackups();
    return backups.find((manifest) => manifest.task === taskId);
  }

  #repository(id: string): Promise<BackupRepository> {
    let opened = this.#open.get(id);
    if (!opened) {
      opened = (async () => {
        const record = await this.catalogue.repository(id);
        if (!record) throw new ZenithError('ZEN_NOT_FOUND', `no backup repository ${id}`, { id });
        const key = record.keySealed
          ? Buffer.from(this.deps.secrets.open(record.keySealed), 'hex')
          : undefined;
        return BackupRepository.open(record.path, key ? { key } : {});
      })();
      this.#open.set(id, opened);
      // A failed open is tried again next time (the path may come back: an NFS mount).
      opened.catch(() => this.#open.delete(id));
    }
    return opened;
  }

  async #view(record: RepositoryRecord): Promise<RepositoryView> {
    return {
      id: record.id,
      name: record.name,
      path: record.path,
      chunkSize: record.chunkSize,
      encrypted: record.keySealed !== null,
      createdAt: record.createdAt,
      scannedAt: record.scannedAt,
      backups: await this.catalogue.countIn(record.id),
    };
  }

  #vmTarget(vmId: string): { vm: ManagedObject; driver: ReturnType<ConnectionService['driver']> } {
    const vm = this.deps.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    if (vm.status === 'missing' || !vm.connectionId || !vm.externalId)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing from its hypervisor`);
    const driver = this.deps.connections.driver(vm.connectionId);
    requireFacet(driver, 'diskStreams', 'backup');
    return { vm, driver };
  }

  /** Makes the default root so a first repository can go there. */
  static ensureRoots(roots: string[]): void {
    for (const root of roots) mkdirSync(root, { recursive: true, mode: 0o700 });
  }
}
