import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { isZenithError } from '../../src/core/errors.js';
import { migrations } from '../../src/store/migrations/index.js';
import { openStore, type StoreOptions } from '../../src/store/store.js';
import { createTestDatabase } from '../../src/testing/postgres.js';
import { storeKinds } from '../../src/testing/control-plane.js';

const migrationDir = join(import.meta.dirname, '../../src/store/migrations');
const lockFile = join(import.meta.dirname, 'migrations.lock.json');

test('released migrations are never edited, reordered or removed (forward-only)', () => {
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as Record<string, string>;
  const files = readdirSync(migrationDir).filter((f) => /^\d{4}-.*\.ts$/.test(f));
  assert.deepEqual(
    migrations.map((m) => m.name),
    files.map((f) => f.replace(/\.ts$/, '')).sort(),
    'every migration file is listed in migrations/index.ts, in order',
  );
  for (const [name, digest] of Object.entries(lock)) {
    const file = join(migrationDir, `${name}.ts`);
    const actual = createHash('sha256').update(readFileSync(file)).digest('hex');
    assert.equal(
      actual,
      digest,
      `${name} changed after release: write a new migration instead (and add it to test/store/migrations.lock.json)`,
    );
  }
  assert.deepEqual(
    Object.keys(lock),
    migrations.map((m) => m.name).slice(0, Object.keys(lock).length),
    'the lock lists migrations in order',
  );
});

for (const kind of storeKinds) {
  describe(`store on ${kind}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });
    const target = async (): Promise<StoreOptions> => {
      if (kind === 'postgres') {
        const database = await createTestDatabase();
        cleanups.push(() => database.drop());
        return { databaseUrl: database.url };
      }
      const dataDir = mkdtempSync(join(tmpdir(), 'zenith-store-'));
      cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
      return { dataDir };
    };

    test('data written at every earlier schema version stays readable after upgrading to the latest', async () => {
      const options = await target();
      for (const [index, migration] of migrations.entries()) {
        const store = await openStore({ ...options, migrateUpTo: migration.name });
        assert.deepEqual(
          await store.appliedMigrations(),
          migrations.slice(0, index + 1).map((m) => m.name),
        );
        await store.db
          .insertInto('objects')
          .values({
            id: `vm_written_at_${index}`,
            kind: 'vm',
            name: `vm-${index}`,
            parent_id: null,
            connection_id: null,
            external_id: null,
            tags: '{"discovered":[],"user":[]}',
            facts: '{"cpu.count":2}',
            user_facts: '{}',
            status: 'present',
            missing_since: null,
            created_at: 1,
            updated_at: 1,
          })
          .execute();
        await store.close();
      }
      const latest = await openStore(options);
      const rows = await latest.db
        .selectFrom('objects')
        .select(['id', 'facts'])
        .orderBy('id')
        .execute();
      assert.equal(rows.length, migrations.length);
      assert.deepEqual(JSON.parse(rows[0]!.facts), { 'cpu.count': 2 });
      await latest.close();
    });

    test('a store written by a newer Zenith is refused, not downgraded', async () => {
      const options = await target();
      const store = await openStore(options);
      await sql`insert into zenith_migrations (name, applied_at) values ('9999-from-the-future', 0)`.execute(
        store.db,
      );
      await store.close();
      await assert.rejects(
        openStore(options),
        (error) =>
          isZenithError(error) &&
          error.code === 'ZEN_MIGRATION_FAILED' &&
          /newer Zenith/.test(error.message),
      );
    });
  });
}

test('an unreachable PostgreSQL gives ZEN_STORE_UNAVAILABLE, a bad URL ZEN_CONFIG_INVALID', async () => {
  await assert.rejects(
    openStore({ databaseUrl: 'postgres://nobody:x@127.0.0.1:1/none' }),
    (e) => isZenithError(e) && e.code === 'ZEN_STORE_UNAVAILABLE',
  );
  await assert.rejects(
    openStore({ databaseUrl: 'mysql://x' }),
    (e) => isZenithError(e) && e.code === 'ZEN_CONFIG_INVALID',
  );
});
