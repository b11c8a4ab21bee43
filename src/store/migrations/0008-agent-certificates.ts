import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Resource identities: Zenith's own CA (its key sealed), the client certificates it issues to agents
// (by serial, revocable), facts of identities (a user's department) and conditions on role bindings.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('certificate_authorities')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('certificate', 'text', (c) => c.notNull())
    .addColumn('sealed_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('not_after', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('agent_certificates')
    .addColumn('serial', 'text', (c) => c.primaryKey())
    .addColumn('agent_id', 'text', (c) => c.notNull())
    .addColumn('identity_id', 'text', (c) => c.notNull())
    .addColumn('not_before', 'bigint', (c) => c.notNull())
    .addColumn('not_after', 'bigint', (c) => c.notNull())
    .addColumn('issued_at', 'bigint', (c) => c.notNull())
    .addColumn('replaces', 'text')
    .addColumn('first_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_reason', 'text')
    .execute();
  await db.schema
    .createIndex('agent_certificates_by_agent')
    .on('agent_certificates')
    .column('agent_id')
    .execute();
  await db.schema
    .alterTable('identities')
    .addColumn('attributes', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema.alterTable('role_bindings').addColumn('condition', 'text').execute();
}
