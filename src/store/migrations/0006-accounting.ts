import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.js';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Accounting: rate card versions (immutable once written) and the ownership history of VMs.
export async function up(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  await db.schema
    .createTable('rate_cards')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('version', 'integer', (c) => c.notNull().unique())
    .addColumn('effective_from', 'bigint', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('vm_ownership')
    .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('group_name', 'text', (c) => c.notNull())
    .addColumn('cost_center', 'text', (c) => c.notNull())
    .addColumn('from_ts', 'bigint', (c) => c.notNull())
    .addColumn('to_ts', 'bigint')
    .addColumn('changed_by', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('ownership_by_vm')
    .on('vm_ownership')
    .columns(['vm_id', 'from_ts'])
    .execute();
}
