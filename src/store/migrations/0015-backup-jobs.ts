import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Schedules (the scheduler's: what fires when, taken by compare-and-set so a slot fires once), backup
// jobs (which VMs, where, when, what to keep; each acts as a service identity of its own), and the
// backups each run of a job asked for (recorded with the backup's task, so a run resumed after a
// crash waits for them instead of asking again).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('schedules')
    /** The owner's id (a backup job's id). */
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** Whose handler fires it ('backup.job'). */
    .addColumn('owner_kind', 'text', (c) => c.notNull())
    .addColumn('cron', 'text', (c) => c.notNull())
    .addColumn('time_zone', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    /** The slot due next (ms since the epoch); null when the pattern has no further slot. */
    .addColumn('next_run_at', 'bigint')
    .addColumn('last_run_at', 'bigint')
    .addColumn('last_task_id', 'text')
    .execute();
  await db.schema
    .createIndex('schedules_due')
    .on('schedules')
    .columns(['enabled', 'next_run_at'])
    .execute();
  await db.schema
    .createTable('backup_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('repository_id', 'text', (c) => c.notNull())
    /** A condition over vm, group and user facts (the policy language); null: every VM in scope. */
    .addColumn('selector', 'text')
    /** The object whose subtree the job reaches (null: everything). */
    .addColumn('scope_id', 'text')
    /** A cron pattern (5 or 6 fields) and its time zone; null: run on demand only. */
    .addColumn('schedule', 'text')
    .addColumn('time_zone', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    /** JSON: keep-last, hourly, daily, weekly, monthly, yearly; null: keep everything. */
    .addColumn('retention', 'text')
    .addColumn('max_per_host', 'integer', (c) => c.notNull())
    .addColumn('max_per_repository', 'integer', (c) => c.notNull())
    /** The service identity the job acts as, and its role binding on the scope. */
    .addColumn('identity_id', 'text', (c) => c.notNull())
    .addColumn('binding_id', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('backup_job_items')
    /** The job run's task. */
    .addColumn('run_task_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    /** The backup.create task asked for the VM (recorded in that task's own transaction). */
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('backup_job_items_pk', ['run_task_id', 'vm_id'])
    .execute();
}
