import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// The image library: what storage scans found on each host (decision 0040). One row per file per
// host that reaches it; a file a later scan of its host no longer finds is marked missing, not
// deleted, until the host's next scan that finds it again or an operator forgets it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('images')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text', (c) => c.notNull())
    .addColumn('connection_id', 'text', (c) => c.notNull())
    /** The file as found on the host (a link's own path). */
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('root', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    /** qcow2, vmdk, raw, iso, kernel, initrd. */
    .addColumn('format', 'text', (c) => c.notNull())
    /** disk, iso, kernel, initrd. */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('virtual_bytes', 'bigint', (c) => c.notNull())
    .addColumn('file_bytes', 'bigint', (c) => c.notNull())
    .addColumn('allocated_bytes', 'bigint', (c) => c.notNull())
    .addColumn('backing_file', 'text')
    .addColumn('label', 'text')
    /** Why its header cannot be believed (ZEN_IMAGE_CORRUPT), or null. */
    .addColumn('problem', 'text')
    .addColumn('link_target', 'text')
    .addColumn('modified_at', 'bigint', (c) => c.notNull())
    /** The VM that claimed it as a disk (UUID and name), where the family records claims. */
    .addColumn('owner_vm_uuid', 'text')
    .addColumn('owner_vm_name', 'text')
    /** 1 when the scanning host defined that VM at the time of the scan. */
    .addColumn('owner_defined', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('missing_since', 'bigint')
    .addColumn('first_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('scanned_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('images_by_host_path')
    .on('images')
    .columns(['host_id', 'path'])
    .unique()
    .execute();
  // Each host's last scan: when, what its roots answered, what was passed over.
  await db.schema
    .createTable('image_scans')
    .addColumn('host_id', 'text', (c) => c.primaryKey())
    .addColumn('scanned_at', 'bigint', (c) => c.notNull())
    .addColumn('duration_ms', 'bigint', (c) => c.notNull())
    /** JSON: the roots and their errors, the skips, whether it was truncated, the counts. */
    .addColumn('summary', 'text', (c) => c.notNull())
    .execute();
}
