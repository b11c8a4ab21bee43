import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// High availability's VM monitoring: every restart of a VM whose QEMU died or whose guest panicked,
// one row per attempt of one stop (the stop is the start of the VM's stopped location interval),
// written in the same transaction as the start task, so a stop is never restarted twice and the
// restarts counted against the limit survive a restart of the control plane.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('ha_monitor_restarts')
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('stopped_at', 'bigint', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('vm_name', 'text', (c) => c.notNull())
    .addColumn('host_id', 'text')
    .addColumn('cause', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('task_id', 'text')
    .addColumn('reason', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('ha_monitor_restarts_pk', ['vm_id', 'stopped_at', 'attempt'])
    .execute();
  await db.schema
    .createIndex('ha_monitor_restarts_by_time')
    .on('ha_monitor_restarts')
    .columns(['vm_id', 'created_at'])
    .execute();
}
