import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// A backup job's restore tests (Xen Orchestra's health check): after a run, each backup it made is
// restored isolated on a host and booted, then removed. `restore_test` holds where and how (JSON:
// host id, console marker, timeout); null: no restore tests. A run records each restore test it
// asks for (in that task's own transaction), so that a run resumed after a crash asks for none twice.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('backup_jobs').addColumn('restore_test', 'text').execute();
  await db.schema
    .createTable('backup_job_restore_tests')
    /** The job run's task. */
    .addColumn('run_task_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    /** The backup.test task asked for the VM's new backup. */
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('backup_job_restore_tests_pk', ['run_task_id', 'vm_id'])
    .execute();
}
