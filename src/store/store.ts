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
  if (options.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(options.databaseUrl)) {
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        'the database URL must start with postgres:// (or leave it out for embedded SQLite)',
      );
    }
    dialect = 'postgres';
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      await db.destroy();
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
    close: () => db.destroy(),
  };
  try {
    await migrate(store, options.migrateUpTo);
  } catch (error) {
    await db.destroy();
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
