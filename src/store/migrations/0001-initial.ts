import type { Kysely } from 'kysely';
import type { MigrationContext } from './context.js';

// Forward-only: once released, a migration is never edited (test/store/migrations.test.ts holds their checksums).
export async function up(db: Kysely<unknown>, { dialect }: MigrationContext): Promise<void> {
  const bigint = 'bigint';
  await db.schema
    .createTable('objects')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('parent_id', 'text')
    .addColumn('connection_id', 'text')
    .addColumn('external_id', 'text')
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('facts', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('user_facts', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('missing_since', bigint)
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('updated_at', bigint, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('objects_by_external')
    .on('objects')
    .columns(['connection_id', 'kind', 'external_id'])
    .unique()
    .execute();
  await db.schema.createIndex('objects_by_kind').on('objects').columns(['kind', 'name']).execute();

  await db.schema
    .createTable('location_history')
    .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('host_id', 'text')
    .addColumn('power_state', 'text', (c) => c.notNull())
    .addColumn('from_ts', bigint, (c) => c.notNull())
    .addColumn('to_ts', bigint)
    .execute();
  await db.schema
    .createIndex('location_by_vm')
    .on('location_history')
    .columns(['vm_id', 'from_ts'])
    .execute();
  await db.schema
    .createIndex('location_by_host')
    .on('location_history')
    .columns(['host_id', 'from_ts'])
    .execute();

  await db.schema
    .createTable('identities')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('display_name', 'text')
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text')
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('updated_at', bigint, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('identity_id', 'text', (c) =>
      c.notNull().references('identities.id').onDelete('cascade'),
    )
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('expires_at', bigint)
    .addColumn('last_used_at', bigint)
    .addColumn('revoked_at', bigint)
    .execute();
  await db.schema.createIndex('tokens_by_identity').on('tokens').column('identity_id').execute();

  await db.schema
    .createTable('connections')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('secret', 'text')
    .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id'))
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('last_sync_at', bigint)
    .addColumn('created_at', bigint, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('tasks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text')
    .addColumn('owner_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('progress_message', 'text')
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('started_at', bigint)
    .addColumn('ended_at', bigint)
    .execute();
  await db.schema
    .createIndex('tasks_by_state')
    .on('tasks')
    .columns(['state', 'created_at'])
    .execute();
  await db.schema
    .createIndex('tasks_by_target')
    .on('tasks')
    .columns(['target_id', 'created_at'])
    .execute();

  await db.schema
    .createTable('events')
    .addColumn('seq', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('object_id', 'text')
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('ts', bigint, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('audit')
    .addColumn('seq', bigint, (c) => c.primaryKey())
    .addColumn('ts', bigint, (c) => c.notNull())
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('actor_kind', 'text', (c) => c.notNull())
    .addColumn('actor_name', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text')
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('error_code', 'text')
    .addColumn('request_id', 'text')
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_by_actor').on('audit').columns(['actor_id', 'seq']).execute();
  await db.schema
    .createIndex('audit_by_target')
    .on('audit')
    .columns(['target_id', 'seq'])
    .execute();
}
