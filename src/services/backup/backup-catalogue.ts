/**
 * What the control plane keeps of backup: the repositories it writes to, and the catalogue — one
 * row per finished backup, copied from the repository's manifest (the repository stays the source
 * of truth: a scan adds what a manifest says and drops a row whose manifest is gone), plus what
 * only Zenith knows of it (verify's verdict, the task that made it).
 */
import type { BackupRepositoriesTable, BackupsTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import { findRowById, rowsByName } from '../../store/rows.js';
import type { BackupManifest } from './repository/manifest.js';

export interface RepositoryRecord {
  id: string;
  name: string;
  path: string;
  chunkSize: number;
  /** The repository key sealed with the data directory's secret key (encrypted repositories). */
  keySealed: string | null;
  createdAt: number;
  scannedAt: number | null;
}

export interface CatalogueDisk {
  diskId: string;
  capacityBytes: number;
  scope: 'full' | 'changed';
  readBytes: number;
  storedBytes: number;
  checkpoint: string | null;
  /** The guest's file systems were frozen through its agent at the point in time. */
  quiesced: boolean;
  frozenFileSystems: number;
  /** Why not (a running VM's disk): no agent channel, the agent did not answer, …; null otherwise. */
  quiesceNote: string | null;
}

export type BackupState = 'ok' | 'damaged';

export interface CatalogueBackup {
  id: string;
  repositoryId: string;
  vmId: string;
  vmName: string;
  takenAt: number;
  finishedAt: number;
  parentId: string | null;
  jobId: string | null;
  taskId: string | null;
  state: BackupState;
  /** Why verify or a restore found it damaged. */
  damage: string | null;
  /** The disks' capacity: what the VM had. */
  sizeBytes: number;
  readBytes: number;
  storedBytes: number;
  newChunks: number;
  sharedChunks: number;
  zeroChunks: number;
  /** Every disk was read with the guest's file systems frozen (see disks[].quiesced). */
  quiesced: boolean;
  disks: CatalogueDisk[];
}

export interface CatalogueFilter {
  vmId?: string;
  repositoryId?: string;
  state?: BackupState;
}

const repositoryOf = (row: BackupRepositoriesTable): RepositoryRecord => ({
  id: row.id,
  name: row.name,
  path: row.path,
  chunkSize: Number(row.chunk_size),
  keySealed: row.key_sealed,
  createdAt: Number(row.created_at),
  scannedAt: row.scanned_at === null ? null : Number(row.scanned_at),
});

/** A row's disks; rows written before quiescing was recorded read as not quiesced. */
const disksOf = (row: BackupsTable): CatalogueDisk[] =>
  (
    JSON.parse(row.disks) as Array<
      Partial<CatalogueDisk> & Omit<CatalogueDisk, 'quiesced' | 'frozenFileSystems' | 'quiesceNote'>
    >
  ).map((disk) => ({
    ...disk,
    quiesced: disk.quiesced ?? false,
    frozenFileSystems: disk.frozenFileSystems ?? 0,
    quiesceNote: disk.quiesceNote ?? null,
  }));

const backupOf = (row: BackupsTable): CatalogueBackup => ({
  id: row.id,
  repositoryId: row.repository_id,
  vmId: row.vm_id,
  vmName: row.vm_name,
  takenAt: Number(row.taken_at),
  finishedAt: Number(row.finished_at),
  parentId: row.parent_id,
  jobId: row.job_id,
  taskId: row.task_id,
  state: row.state === 'damaged' ? 'damaged' : 'ok',
  damage: row.damage,
  sizeBytes: Number(row.size_bytes),
  readBytes: Number(row.read_bytes),
  storedBytes: Number(row.stored_bytes),
  newChunks: Number(row.new_chunks),
  sharedChunks: Number(row.shared_chunks),
  zeroChunks: Number(row.zero_chunks),
  quiesced: (() => {
    const disks = disksOf(row);
    return disks.length > 0 && disks.every((disk) => disk.quiesced);
  })(),
  disks: disksOf(row),
});

/** The catalogue row a manifest makes. */
export function rowOfManifest(manifest: BackupManifest): BackupsTable {
  const sum = (pick: (disk: BackupManifest['disks'][number]) => number) =>
    manifest.disks.reduce((total, disk) => total + pick(disk), 0);
  return {
    id: manifest.id,
    repository_id: manifest.repositoryId,
    vm_id: manifest.vm.id,
    vm_name: manifest.vm.name,
    taken_at: Date.parse(manifest.takenAt),
    finished_at: Date.parse(manifest.finishedAt),
    parent_id: manifest.parent,
    job_id: manifest.job,
    task_id: manifest.task ?? null,
    state: 'ok',
    damage: null,
    size_bytes: sum((disk) => disk.capacityBytes),
    read_bytes: sum((disk) => disk.readBytes),
    stored_bytes: sum((disk) => disk.storedBytes),
    new_chunks: sum((disk) => disk.newChunks),
    shared_chunks: sum((disk) => disk.sharedChunks),
    zero_chunks: sum((disk) => disk.zeroChunks),
    disks: JSON.stringify(
      manifest.disks.map((disk): CatalogueDisk => ({
        diskId: disk.diskId,
        capacityBytes: disk.capacityBytes,
        scope: disk.scope,
        readBytes: disk.readBytes,
        storedBytes: disk.storedBytes,
        checkpoint: disk.checkpoint ?? null,
        quiesced: disk.quiesced ?? false,
        frozenFileSystems: disk.frozenFileSystems ?? 0,
        quiesceNote: disk.quiesceNote ?? null,
      })),
    ),
  };
}

export class BackupCatalogue {
  constructor(private readonly store: Store) {}

  async repositories(): Promise<RepositoryRecord[]> {
    const rows = await rowsByName(this.store.db, 'backup_repositories');
    return rows.map(repositoryOf);
  }

  async repository(id: string): Promise<RepositoryRecord | undefined> {
    const row = await findRowById(this.store.db, 'backup_repositories', id);
    return row ? repositoryOf(row) : undefined;
  }

  async addRepository(record: RepositoryRecord): Promise<void> {
    await this.store.db
      .insertInto('backup_repositories')
      .values({
        id: record.id,
        name: record.name,
        path: record.path,
        chunk_size: record.chunkSize,
        key_sealed: record.keySealed,
        created_at: record.createdAt,
        scanned_at: record.scannedAt,
      })
      .execute();
  }

  /** Forgets a repository and its catalogue (the repository's files stay as they are). */
  async removeRepository(id: string): Promise<void> {
    await this.store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('backups').where('repository_id', '=', id).execute();
      await tx.deleteFrom('backup_repositories').where('id', '=', id).execute();
    });
  }

  /**
   * Makes the repository's rows what its manifests say: a new manifest adds a row, a row whose
   * manifest is gone goes; a row found damaged stays damaged. Unreadable manifests mark their row.
   */
  async sync(
    repositoryId: string,
    manifests: BackupManifest[],
    unreadable: Array<{ backupId: string; reason: string }>,
    now: number,
  ): Promise<void> {
    await this.store.db.transaction().execute(async (tx) => {
      const known = new Set(
        (
          await tx
            .selectFrom('backups')
            .select('id')
            .where('repository_id', '=', repositoryId)
            .execute()
        ).map((row) => row.id),
      );
      const present = new Set([
        ...manifests.map((m) => m.id),
        ...unreadable.map((u) => u.backupId),
      ]);
      for (const manifest of manifests)
        if (!known.has(manifest.id))
          await tx.insertInto('backups').values(rowOfManifest(manifest)).execute();
      for (const { backupId, reason } of unreadable)
        await tx
          .updateTable('backups')
          .set({ state: 'damaged', damage: reason })
          .where('id', '=', backupId)
          .execute();
      const gone = [...known].filter((id) => !present.has(id));
      if (gone.length > 0) await tx.deleteFrom('backups').where('id', 'in', gone).execute();
      await tx
        .updateTable('backup_repositories')
        .set({ scanned_at: now })
        .where('id', '=', repositoryId)
        .execute();
    });
  }

  /** Adds the row of a backup just made (a scan may have added it already). */
  async add(manifest: BackupManifest): Promise<void> {
    await this.store.db
      .insertInto('backups')
      .values(rowOfManifest(manifest))
      .onConflict((conflict) => conflict.column('id').doNothing())
      .execute();
  }

  async markDamaged(backupIds: string[], damage: string): Promise<void> {
    if (backupIds.length === 0) return;
    await this.store.db
      .updateTable('backups')
      .set({ state: 'damaged', damage })
      .where('id', 'in', backupIds)
      .execute();
  }

  /** Backups verify found whole again (a chunk repaired by a later backup writing it anew). */
  async markOk(repositoryId: string, except: string[]): Promise<void> {
    let query = this.store.db
      .updateTable('backups')
      .set({ state: 'ok', damage: null })
      .where('repository_id', '=', repositoryId)
      .where('state', '=', 'damaged');
    if (except.length > 0) query = query.where('id', 'not in', except);
    await query.execute();
  }

  async remove(backupId: string): Promise<void> {
    await this.store.db.deleteFrom('backups').where('id', '=', backupId).execute();
  }

  async get(id: string): Promise<CatalogueBackup | undefined> {
    const row = await findRowById(this.store.db, 'backups', id);
    return row ? backupOf(row) : undefined;
  }

  /** Newest first. */
  async list(filter: CatalogueFilter = {}): Promise<CatalogueBackup[]> {
    let query = this.store.db.selectFrom('backups').selectAll();
    if (filter.vmId) query = query.where('vm_id', '=', filter.vmId);
    if (filter.repositoryId) query = query.where('repository_id', '=', filter.repositoryId);
    if (filter.state) query = query.where('state', '=', filter.state);
    const rows = await query.orderBy('taken_at', 'desc').orderBy('id', 'desc').execute();
    return rows.map(backupOf);
  }

  /** The newest whole backup of the VM in the repository: what the next one reads changes against. */
  async latest(vmId: string, repositoryId: string): Promise<CatalogueBackup | undefined> {
    const row = await this.store.db
      .selectFrom('backups')
      .selectAll()
      .where('vm_id', '=', vmId)
      .where('repository_id', '=', repositoryId)
      .where('state', '=', 'ok')
      .orderBy('taken_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    return row ? backupOf(row) : undefined;
  }

  async countIn(repositoryId: string): Promise<number> {
    const row = await this.store.db
      .selectFrom('backups')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('repository_id', '=', repositoryId)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }
}
