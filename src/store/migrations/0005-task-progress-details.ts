import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// The figures behind a task's progress (a migration's bytes sent and remaining, its pass), as JSON.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('progress_details', 'text').execute();
}
