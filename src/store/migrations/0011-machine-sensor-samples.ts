import type { Kysely } from 'kysely';

// Forward-only: once released, a migration is never edited (test/store/migrations.lock.json holds its checksum).
// Sensor history of physical machines: one row per machine and sample, what its BMC read then
// (power draw, the highest temperature, the average fan speed); null where the BMC has no such
// sensor. Energy (kWh) is integrated from the watts at read time.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('machine_sensor_samples')
    .addColumn('machine_id', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('watts', 'double precision')
    .addColumn('temperature_c', 'double precision')
    .addColumn('fan_rpm', 'double precision')
    .addPrimaryKeyConstraint('machine_sensor_samples_pk', ['machine_id', 'at'])
    .execute();
  await db.schema
    .createIndex('machine_sensor_samples_by_time')
    .on('machine_sensor_samples')
    .column('at')
    .execute();
}
