import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { ZenithError } from '../core/errors.js';
import { migrations, type Dialect } from './migrations/index.js';
import type { Database } from './schema.js';

export type { Dialect } from './migrations/index.js';
export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

export interface StoreOptions {
  /** PostgreSQL connection URL (postgres://…). When absent, SQLite under dataDir. */
  databaseUrl?: string | undefined;
  /** Data directory for the SQLite file (zenith.db). */
  dataDir?: string | undefined;
  /** Stop after this migration (tests of upgrades); default: all. */
  migrateUpTo?: string | undefined;
  /**
   * Told when PostgreSQL ends a connection that sat idle in the pool (a restart, a failover, an
   * administrator's terminate). The pool drops it and opens another on the next query.
   */
  onIdleConnectionLost?: ((error: Error) => void) | undefined;
}

export interface Store {
  readonly db: Db;
  readonly dialect: Dialect;
  /** Runs `work` in one transaction: all of it is written or none. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  /** Applied migration names, oldest first. */
  appliedMigrations(): Promise<string[]>;
  close(): Promise<void>;
}

// Both drivers must hand back integers as numbers, not strings (times are bigint ms).
pg.types.setTypeParser(20, (value) => Number(value));

/**
 * The database file (and SQLite's -wal and -shm beside it) readable by the owner only: it holds
 * password hashes and sealed secrets. mkdirSync's mode does nothing for a data directory that exists
 * already, and a new file would take the umask's 0644; a file from an older start is tightened.
 */
function ownerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`])
    if (existsSync(file)) chmodSync(file, 0o600);
}

export async function openStore(options: StoreOptions): Promise<Store> {
  let db: Db;
  let dialect: Dialect;
  let closeDb = (): Promise<void> => db.destroy();
  if (options.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(options.databaseUrl)) {
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        'the database URL must start with postgres:// (or leave it out for embedded SQLite)',
      );
    }
    dialect = 'postgres';
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
    // Without a listener, pg-pool throws an idle connection's end as an uncaught exception: one
    // restart of the database would take the whole control plane down.
    pool.on('error', (error) => options.onIdleConnectionLost?.(error));
    // pool.end() resolves once it has asked its connections to end, not once they have: close()
    // waits for their sockets too, so that nothing of this store is left open after it.
    const open = new Set<Promise<void>>();
    pool.on('connect', (client) => {
      const ended = new Promise<void>((resolve) =>
        client.once('end', () => {
          open.delete(ended);
          resolve();
        }),
      );
      open.add(ended);
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const destroy = db.destroy.bind(db);
    closeDb = async () => {
      await destroy();
      await Promise.all(open);
    };
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      await closeDb();
      throw new ZenithError(
        'ZEN_STORE_UNAVAILABLE',
        `cannot reach PostgreSQL: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
  } else {
    if (!options.dataDir)
      throw new ZenithError('ZEN_CONFIG_INVALID', 'a data directory or a database URL is required');
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const path = join(options.dataDir, 'zenith.db');
    ownerOnly(path);
    const file = new SqliteDatabase(path);
    file.pragma('journal_mode = WAL');
    file.pragma('synchronous = NORMAL');
    file.pragma('foreign_keys = ON');
    file.pragma('busy_timeout = 5000');
    dialect = 'sqlite';
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: file }) });
  }
  const store: Store = {
    db,
    dialect,
    transaction: (work) => db.transaction().execute(work),
    appliedMigrations: async () =>
      (
        await sql<{ name: string }>`select name from zenith_migrations order by name`.execute(db)
      ).rows.map((r) => r.name),
    close: () => closeDb(),
  };
  try {
    await migrate(store, options.migrateUpTo);
  } catch (error) {
    await closeDb();
    throw error;
  }
  return store;
}

async function migrate(store: Store, upTo: string | undefined): Promise<void> {
  const { db, dialect } = store;
  await sql`create table if not exists zenith_migrations (name text primary key, applied_at bigint not null)`.execute(
    db,
  );
  await db.transaction().execute(async (tx) => {
    // Several replicas may start at once on one PostgreSQL: one migrates, the others wait.
    if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(7336001)`.execute(tx);
    const applied = new Set(
      (await sql<{ name: string }>`select name from zenith_migrations`.execute(tx)).rows.map(
        (r) => r.name,
      ),
    );
    const known = new Set(migrations.map((m) => m.name));
    const unknown = [...applied].filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new ZenithError(
        'ZEN_MIGRATION_FAILED',
        `the database was written by a newer Zenith (migrations ${unknown.join(', ')}); upgrade Zenith, never downgrade`,
        { unknown },
      );
    }
    for (const migration of migrations) {
      if (applied.has(migration.name)) continue;
      try {
        await migration.up(tx as unknown as Kysely<unknown>, { dialect });
      } catch (error) {
        throw new ZenithError(
          'ZEN_MIGRATION_FAILED',
          `migration ${migration.name} failed: ${(error as Error).message}`,
          { migration: migration.name },
          { cause: error },
        );
      }
      await sql`insert into zenith_migrations (name, applied_at) values (${migration.name}, ${Date.now()})`.execute(
        tx,
      );
      if (migration.name === upTo) break;
    }
  });
}
