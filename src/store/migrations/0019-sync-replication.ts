import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Synchronous replication: a replication's mode (interval cycles, or a write-blocking mirror into
// a replica at the target with points taken on schedule), its key (sealed) and where its mirror
// stands.
export async function up(db: Kysely<unknown>): Promise<void> {
  /** interval (cycles of changed extents) or sync (a mirror into a running replica). */
  await db.schema
    .alterTable('replications')
    .addColumn('mode', 'text', (c) => c.notNull().defaultTo('interval'))
    .execute();
  /** Sync: the pre-shared key both ends hold, JSON {identity, key}, sealed with the secret key. */
  await db.schema.alterTable('replications').addColumn('sync_key', 'text').execute();
  /**
   * Sync: null (not set up yet), engaging (the replica and mirrors being started), mirroring
   * (every write reaches the replica), fallback (the mirror was lost: interval cycles until it is
   * set up again).
   */
  await db.schema.alterTable('replications').addColumn('sync_state', 'text').execute();
  /** Sync: JSON, the live overlays at the target by disk id (the next point's images). */
  await db.schema.alterTable('replications').addColumn('sync_overlays', 'text').execute();
  /** Sync: when the state last changed. */
  await db.schema.alterTable('replications').addColumn('sync_since', 'bigint').execute();
  /** Sync: JSON {code, message}: why the mirror was lost, or could not be set up. */
  await db.schema.alterTable('replications').addColumn('sync_error', 'text').execute();
}
