import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Where an identity's password lives: 'local' (its scrypt hash here) or 'ldap' (the directory).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('identities')
    .addColumn('source', 'text', (c) => c.notNull().defaultTo('local'))
    .execute();
}
