import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.js';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// The sizes a VM had over time (vCPUs, memory, disk): one row per change, valid until the next.
export async function up(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('vm_allocations')
    .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('from_ts', 'bigint', (c) => c.notNull())
    .addColumn('cpus', 'integer', (c) => c.notNull())
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
    .addColumn('disk_bytes', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('allocations_by_vm')
    .on('vm_allocations')
    .columns(['vm_id', 'from_ts'])
    .execute();
}
