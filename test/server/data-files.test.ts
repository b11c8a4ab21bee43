/** The database holds password hashes and sealed secrets: readable by its owner only. */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openStore } from '../../src/store/store.js';
import { startTestServer } from '../../src/testing/control-plane.js';

const modeOf = (file: string) => statSync(file).mode & 0o777;

test('a server on a data directory that exists keeps zenith.db and its journal owner-only', async () => {
  const s = await startTestServer();
  try {
    const admin = await s.login();
    assert.equal(
      (await s.request('POST', '/groups', { token: admin, body: { name: 'staff' } })).status,
      201,
    );
    const db = join(s.dataDir, 'zenith.db');
    for (const file of [db, `${db}-wal`, `${db}-shm`])
      if (existsSync(file)) assert.equal(modeOf(file).toString(8), '600', file);
    assert.equal(modeOf(join(s.dataDir, 'secret.key')).toString(8), '600');
  } finally {
    await s.close();
  }
});

test('a world-readable zenith.db from before is made owner-only when it is opened', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-modes-'));
  try {
    chmodSync(dataDir, 0o755);
    const first = await openStore({ dataDir });
    await first.close();
    const db = join(dataDir, 'zenith.db');
    chmodSync(db, 0o644);
    writeFileSync(`${db}-wal`, '');
    chmodSync(`${db}-wal`, 0o644);
    const again = await openStore({ dataDir });
    try {
      assert.equal(modeOf(db).toString(8), '600');
      assert.equal(modeOf(`${db}-wal`).toString(8), '600');
      assert.ok((await again.appliedMigrations()).length > 0, 'the store still opens');
    } finally {
      await again.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
