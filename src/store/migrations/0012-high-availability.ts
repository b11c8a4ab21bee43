import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// High availability: why a VM's location changed (failover), the portable description of each
// protected VM (what a restart elsewhere runs), and every failover with each VM's restart, durable
// step by step so that a control plane killed in the middle resumes it and starts nothing twice.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('location_history').addColumn('reason', 'text').execute();
  await db.schema
    .createTable('ha_vm_descriptions')
    .addColumn('vm_id', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('described_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('ha_failovers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('host_id', 'text', (c) => c.notNull())
    .addColumn('host_name', 'text', (c) => c.notNull())
    .addColumn('failed_at', 'bigint', (c) => c.notNull())
    .addColumn('detected_at', 'bigint', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('fence_method', 'text')
    .addColumn('fenced_at', 'bigint')
    .addColumn('task_id', 'text')
    .addColumn('error', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('ha_failovers_by_host')
    .on('ha_failovers')
    .columns(['host_id', 'failed_at'])
    .execute();
  await db.schema
    .createTable('ha_restarts')
    .addColumn('failover_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('vm_name', 'text', (c) => c.notNull())
    .addColumn('priority', 'text', (c) => c.notNull())
    .addColumn('restart_order', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('to_host_id', 'text')
    .addColumn('reason', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'bigint')
    .addColumn('running_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('ha_restarts_pk', ['failover_id', 'vm_id'])
    .execute();
}
