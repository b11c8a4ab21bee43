/**
 * The store's PostgreSQL pool against a real server: a connection the server ends while it sits
 * idle (a restart, a failover, an administrator's terminate) is reported and replaced, never thrown
 * as an uncaught exception, and close() leaves no connection of the store open.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/store.js';
import { createTestDatabase } from '../../src/testing/postgres.js';

describe('the store on PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: pg.Client;
  const databaseName = () => new URL(database.url).pathname.slice(1);
  const sessionsOfTheStore = async () =>
    Number(
      (
        await admin.query(
          'select count(*) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [databaseName()],
        )
      ).rows[0].n,
    );

  before(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await database.drop();
  });

  test('idle connections the server terminates are reported, and the next query opens another', async () => {
    const lost: Error[] = [];
    const store: Store = await openStore({
      databaseUrl: database.url,
      onIdleConnectionLost: (error) => lost.push(error),
    });
    try {
      // Three connections in the pool, all idle afterwards.
      await Promise.all([1, 2, 3].map(() => sql`select pg_sleep(0.05)`.execute(store.db)));
      const idle = await sessionsOfTheStore();
      assert.ok(idle >= 3, `the pool holds its connections open (${idle})`);
      const terminated = await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [databaseName()],
      );
      assert.equal(terminated.rowCount, idle);
      for (let waited = 0; lost.length < idle && waited < 5000; waited += 50) await sleep(50);
      assert.equal(lost.length, idle, 'each terminated connection is reported once');
      assert.ok(lost.every((error) => (error as Error & { code?: string }).code === '57P01'));
      const answer = await sql<{ one: number }>`select 1 as one`.execute(store.db);
      assert.equal(answer.rows[0]?.one, 1, 'the store answers on a new connection');
      assert.equal(await sessionsOfTheStore(), 1);
    } finally {
      await store.close();
    }
    assert.equal(await sessionsOfTheStore(), 0, 'close() leaves no connection of the store open');
  });

  test('a database dropped with force right after close() finds no connection of the store', async () => {
    const scratch = await createTestDatabase();
    const store = await openStore({ databaseUrl: scratch.url });
    await Promise.all([1, 2, 3, 4].map(() => sql`select pg_sleep(0.02)`.execute(store.db)));
    await store.close();
    // Before, pool.end() resolved before its sockets closed, and the drop's terminate reached an
    // idle connection as an uncaught exception that failed the whole test file.
    const left = await admin.query(
      'select count(*) as n from pg_stat_activity where datname = $1',
      [new URL(scratch.url).pathname.slice(1)],
    );
    assert.equal(Number(left.rows[0].n), 0, 'no connection of the closed store is left');
    await scratch.drop();
    await sleep(200);
  });
});
