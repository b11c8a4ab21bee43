import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Metrics history of VMs: raw samples (short retention) and 5-minute rollups (long retention).
// Counters are stored as differences from the previous sample (a counter reset already handled),
// so that every row adds up: a rate is a sum of differences over a sum of spans.
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const [table, time] of [
    ['vm_metric_samples', 'at'],
    ['vm_metric_rollups', 'bucket_start'],
  ] as const) {
    let create = db.schema
      .createTable(table)
      .addColumn('vm_id', 'text', (c) => c.notNull())
      .addColumn(time, 'bigint', (c) => c.notNull())
      // Milliseconds the differences cover (0: a first sample, which has no rate).
      .addColumn('span_ms', 'bigint', (c) => c.notNull())
      .addColumn('cpu_ms', 'bigint', (c) => c.notNull())
      .addColumn('disk_read_bytes', 'bigint', (c) => c.notNull())
      .addColumn('disk_write_bytes', 'bigint', (c) => c.notNull())
      // Network counters exist only where the driver reads them: their own span (0: none).
      .addColumn('net_span_ms', 'bigint', (c) => c.notNull())
      .addColumn('net_rx_bytes', 'bigint', (c) => c.notNull())
      .addColumn('net_tx_bytes', 'bigint', (c) => c.notNull())
      .addColumn('memory_sum_bytes', 'bigint', (c) => c.notNull())
      .addColumn('memory_samples', 'integer', (c) => c.notNull());
    create = create.addPrimaryKeyConstraint(`${table}_pk`, ['vm_id', time]);
    await create.execute();
    await db.schema.createIndex(`${table}_by_time`).on(table).column(time).execute();
  }
}
