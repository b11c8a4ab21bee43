import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Who is behind a connection, as its driver reports it (a libvirt host UUID, a vCenter's instance
// UUID): unique, so two connections can never reach the same hypervisor, even when added at once.
// Null until the peer has been reached once (and for drivers that cannot tell).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('connections').addColumn('peer_id', 'text').execute();
  await db.schema
    .createIndex('connections_by_peer')
    .on('connections')
    .column('peer_id')
    .unique()
    .execute();
}
