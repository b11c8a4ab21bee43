import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Quotas per group (a null limit is no limit) and the reservations that creation, clone and
// reconfigure tasks hold while they run.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('quotas')
    .addColumn('group_id', 'text', (c) => c.primaryKey())
    .addColumn('vcpus', 'bigint')
    .addColumn('memory_bytes', 'bigint')
    .addColumn('disk_bytes', 'bigint')
    .addColumn('vms', 'bigint')
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('quota_reservations')
    .addColumn('task_id', 'text', (c) => c.primaryKey())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('vcpus', 'bigint', (c) => c.notNull())
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
    .addColumn('disk_bytes', 'bigint', (c) => c.notNull())
    .addColumn('vms', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('quota_reservations_by_group')
    .on('quota_reservations')
    .column('group_id')
    .execute();
}
