import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// What a VM left at a host when a recovery plan moved it away (its stale definition there and the
// disks it owns), or when it was reprotected (the replica chain and run overlays it ran from): kept
// until a new replica of the VM at that site has a ready point, then deleted and removed.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('replica_leftovers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('host_id', 'text', (c) => c.notNull())
    /** The host's own id of the VM's stale definition there, deleted first (with the disks it
     * owns); null: images only. */
    .addColumn('definition_id', 'text')
    /** JSON: the images (absolute paths on that host), removed one at a time in this order. */
    .addColumn('paths', 'text', (c) => c.notNull())
    /** failover, planned (the VM moved away), reprotect (its replica chain was left). */
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('replica_leftovers_by_vm')
    .on('replica_leftovers')
    .column('vm_id')
    .execute();
}
