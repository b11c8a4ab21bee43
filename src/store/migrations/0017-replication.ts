import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Replication and disaster recovery. Sites (named sets of hosts); per-VM replications to a host of
// another site, each a chain of replica points (a full image, then overlays of what changed) that
// a cycle writes as `writing` and marks `ready` only once every disk is durable; recovery plans
// (ordered groups of replicated VMs, a network mapping) and their runs, each VM's step recorded
// before it is taken so that a run resumed after a crash takes none twice.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sites')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('site_hosts')
    /** A host belongs to one site at most. */
    .addColumn('host_id', 'text', (c) => c.primaryKey())
    .addColumn('site_id', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('replications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** One replication a VM. */
    .addColumn('vm_id', 'text', (c) => c.notNull().unique())
    .addColumn('vm_name', 'text', (c) => c.notNull())
    .addColumn('target_host_id', 'text', (c) => c.notNull())
    /** Where the replica's images are, on the target host (absolute, inside its storage roots). */
    .addColumn('directory', 'text', (c) => c.notNull())
    .addColumn('rpo_seconds', 'integer', (c) => c.notNull())
    .addColumn('interval_seconds', 'integer', (c) => c.notNull())
    .addColumn('keep_points', 'integer', (c) => c.notNull())
    /** active, paused, recovered (the replica runs: a failover or planned migration used it). */
    .addColumn('state', 'text', (c) => c.notNull())
    /** JSON: the VM's portable description at the latest ready point (what a failover runs). */
    .addColumn('description', 'text')
    .addColumn('next_cycle_at', 'bigint')
    .addColumn('last_task_id', 'text')
    /** Whether the RPO was over its target when last looked at (its event is said once). */
    .addColumn('rpo_exceeded', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('replica_points')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('replication_id', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    /** writing (a cycle under way, or cut off), ready, merging (folded into the next one). */
    .addColumn('state', 'text', (c) => c.notNull())
    /** When its data was taken at the source (the earliest of its disks' points in time). */
    .addColumn('taken_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .addColumn('task_id', 'text', (c) => c.notNull())
    /** JSON: each disk's image on the target, its capacity and the source checkpoint of its read. */
    .addColumn('disks', 'text', (c) => c.notNull())
    .addColumn('read_bytes', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('replica_points_seq', ['replication_id', 'seq'])
    .execute();
  await db.schema
    .createTable('recovery_plans')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('source_site_id', 'text', (c) => c.notNull())
    .addColumn('target_site_id', 'text', (c) => c.notNull())
    /** JSON: the priority groups in order, each its VMs and what "up" means for them. */
    .addColumn('groups', 'text', (c) => c.notNull())
    /** JSON: source network attachment → target attachment, for failovers and for tests. */
    .addColumn('network_map', 'text', (c) => c.notNull())
    /** A planned migration asks each guest to shut down, and powers it off after this long. */
    .addColumn('shutdown_timeout_seconds', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('recovery_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('plan_id', 'text', (c) => c.notNull())
    /** test, cleanup, planned, failover. */
    .addColumn('operation', 'text', (c) => c.notNull())
    /** running, done, failed, cleaned (a test whose VMs were removed). */
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('error', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('recovery_run_vms')
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('vm_name', 'text', (c) => c.notNull())
    .addColumn('group_index', 'integer', (c) => c.notNull())
    /** pending, starting, up, failed, removed. */
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('point_id', 'text')
    /** When the replica's data was taken (the data loss window ends here). */
    .addColumn('point_taken_at', 'bigint')
    .addColumn('host_id', 'text')
    /** The VM that runs (a test's copy: a new id; a failover's: the VM itself). */
    .addColumn('run_vm_id', 'text')
    /** JSON: the images the step made at the target (a test's overlays; removed at cleanup). */
    .addColumn('images', 'text')
    .addColumn('started_at', 'bigint')
    .addColumn('up_at', 'bigint')
    .addColumn('reason', 'text')
    .addPrimaryKeyConstraint('recovery_run_vms_pk', ['run_id', 'vm_id'])
    .execute();
}
