import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Physical machines (hosts a BMC connection discovers) linked to the hypervisor hosts running on
// them. host_id null: an operator said the machine runs no host Zenith knows (never linked by itself).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('machine_links')
    .addColumn('machine_id', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text')
    /** smbiosUuid, serial, mac (found by Zenith) or manual (an operator). */
    .addColumn('how', 'text', (c) => c.notNull())
    .addColumn('linked_by', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('machine_links_by_host')
    .on('machine_links')
    .column('host_id')
    .unique()
    .execute();
}
