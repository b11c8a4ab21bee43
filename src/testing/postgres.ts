/**
 * A real PostgreSQL server for tests, from Debian's package, started without
 * systemd. One server is shared by a test run (scripts/test starts it and
 * exports ZENITH_TEST_PG_URL); every caller gets a database of its own.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';

export { freePort };

export interface PostgresServer {
  url: string;
  dir: string;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      'PostgreSQL is not installed: the test command installs the Debian package postgresql (apt-get install -y postgresql)',
    );
  return join(root, versions[0]!, 'bin');
}

/** Starts a private server in a temporary directory (initdb refuses root, so it runs as the postgres user). */
export async function startPostgresServer(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'zenith-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  const asPostgres = (args: string[]) => {
    const run = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`${args[0]} failed: ${run.stderr || run.stdout}`);
  };
  chownSync(
    dir,
    Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  );
  writeFileSync(join(dir, 'pw'), 'zenith-test\n');
  chownSync(join(dir, 'pw'), Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), 0);
  asPostgres([
    join(bin, 'initdb'),
    '-D',
    data,
    '-U',
    'zenith',
    '--pwfile',
    join(dir, 'pw'),
    '-A',
    'scram-sha-256',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  asPostgres([
    join(bin, 'pg_ctl'),
    '-D',
    data,
    '-l',
    join(dir, 'server.log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`,
    'start',
  ]);
  return {
    url: `postgres://zenith:zenith-test@127.0.0.1:${port}/postgres`,
    dir,
    stop: async () => stopPostgresAt(dir),
  };
}

export function stopPostgresAt(dir: string): void {
  spawnSync(
    'runuser',
    [
      '-u',
      'postgres',
      '--',
      join(binDir(), 'pg_ctl'),
      '-D',
      join(dir, 'data'),
      '-m',
      'immediate',
      '-w',
      'stop',
    ],
    { encoding: 'utf8' },
  );
  rmSync(dir, { recursive: true, force: true });
}

/** A fresh, empty database on the shared test server (or on a private one when run alone). */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  let server: PostgresServer | undefined;
  let base = process.env.ZENITH_TEST_PG_URL;
  if (!base) {
    server = await startPostgresServer();
    base = server.url;
  }
  const name = `zenith_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
      await server?.stop();
    },
  };
}
