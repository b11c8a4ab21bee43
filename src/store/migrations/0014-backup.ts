import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Backup: the repositories Zenith writes to (an encrypted one's key sealed with the data
// directory's secret key), and the catalogue of backups — a copy of what the repositories'
// manifests say, read again from them whenever a repository is scanned, so the repository stays
// the source of truth and a catalogue row never names a backup that was not finished.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('backup_repositories')
    /** The id the repository gives itself (zenith-backup-repository.json). */
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('path', 'text', (c) => c.notNull().unique())
    .addColumn('chunk_size', 'integer', (c) => c.notNull())
    .addColumn('key_sealed', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('scanned_at', 'bigint')
    .execute();
  await db.schema
    .createTable('backups')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('repository_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('vm_name', 'text', (c) => c.notNull())
    .addColumn('taken_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint', (c) => c.notNull())
    .addColumn('parent_id', 'text')
    .addColumn('job_id', 'text')
    .addColumn('task_id', 'text')
    /** ok, damaged (verify found a damaged or missing chunk, or the manifest no longer checks). */
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('damage', 'text')
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('read_bytes', 'bigint', (c) => c.notNull())
    .addColumn('stored_bytes', 'bigint', (c) => c.notNull())
    .addColumn('new_chunks', 'integer', (c) => c.notNull())
    .addColumn('shared_chunks', 'integer', (c) => c.notNull())
    .addColumn('zero_chunks', 'integer', (c) => c.notNull())
    /** Per disk: id, capacity, how it was read, bytes read and stored, its checkpoint (JSON). */
    .addColumn('disks', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('backups_by_vm')
    .on('backups')
    .columns(['vm_id', 'taken_at'])
    .execute();
  await db.schema
    .createIndex('backups_by_repository')
    .on('backups')
    .columns(['repository_id', 'taken_at'])
    .execute();
}
