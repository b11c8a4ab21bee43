import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  connectQmp,
  isQmpEvent,
  type QmpClient,
  type QmpEventMessage,
} from '../../../src/protocols/qmp/index.js';
import { GUEST_READY_LINE } from '../../../src/testing/guest-image.js';
import { freePort } from '../../../src/testing/ports.js';
import {
  lastTick,
  startTestQemu,
  waitForSerial,
  type TestQemu,
} from '../../../src/testing/qemu.js';

test('live migration of the running test guest between two QEMU processes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-migrate-'));
  const port = await freePort();
  const source = await startTestQemu({
    qmpSocket: join(dir, 'src.sock'),
    serialFile: join(dir, 'src.log'),
    memoryMiB: 128,
  });
  let destination: TestQemu | undefined;
  let sourceQmp: QmpClient | undefined;
  let destinationQmp: QmpClient | undefined;
  try {
    destination = await startTestQemu({
      qmpSocket: join(dir, 'dst.sock'),
      serialFile: join(dir, 'dst.log'),
      memoryMiB: 128,
      incomingPort: port,
    });
    sourceQmp = await connectQmp(join(dir, 'src.sock'));
    destinationQmp = await connectQmp(join(dir, 'dst.sock'));
    await waitForSerial(join(dir, 'src.log'), new RegExp(GUEST_READY_LINE));
    await waitForSerial(join(dir, 'src.log'), /^tick 3\r?$/m);
    assert.equal((await destinationQmp.execute('query-status')).status, 'inmigrate');

    // MIGRATION events are off until the `events` capability is set (on each side).
    for (const qmp of [sourceQmp, destinationQmp]) {
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'events', state: true }],
      });
    }
    await sourceQmp.execute('migrate-set-parameters', { 'downtime-limit': 300 });
    const sourceEvents: QmpEventMessage[] = [];
    const destinationEvents: QmpEventMessage[] = [];
    sourceQmp.onEvent((event) => sourceEvents.push(event));
    destinationQmp.onEvent((event) => destinationEvents.push(event));
    const completed = sourceQmp.waitForEvent('MIGRATION', {
      predicate: (event) => event.data.status === 'completed' || event.data.status === 'failed',
      timeoutMs: 30_000,
    });
    // The destination resumes the guest, then reports completed (QEMU 7.2 order): wait for both.
    const resumed = destinationQmp.waitForEvent('RESUME', { timeoutMs: 30_000 });
    const arrived = destinationQmp.waitForEvent('MIGRATION', {
      predicate: (event) => event.data.status === 'completed' || event.data.status === 'failed',
      timeoutMs: 30_000,
    });

    const started = Date.now();
    assert.deepEqual(await sourceQmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` }), {});
    const done = await completed;
    const wall = Date.now() - started;
    assert.equal(done.data.status, 'completed');
    await resumed;
    assert.equal((await arrived).data.status, 'completed');

    const info = await sourceQmp.execute('query-migrate');
    assert.equal(info.status, 'completed');
    assert.ok((info.ram?.transferred ?? 0) > 1_000_000, 'RAM pages went over the wire');
    assert.ok((info.ram?.total ?? 0) >= 128 * 1024 * 1024, 'the whole guest RAM was accounted for');
    assert.ok(typeof info.downtime === 'number' && typeof info['total-time'] === 'number');
    t.diagnostic(
      `migration: ${info['total-time']} ms total (QEMU), ${wall} ms wall, downtime ${info.downtime} ms, ` +
        `${info.ram?.transferred} bytes, ${info.ram?.['dirty-sync-count']} dirty syncs`,
    );

    const sourceStatuses = sourceEvents
      .filter((e) => isQmpEvent(e, 'MIGRATION'))
      .map((e) => e.data.status);
    assert.deepEqual(sourceStatuses.slice(0, 2), ['setup', 'active']);
    assert.equal(sourceStatuses.at(-1), 'completed');
    assert.ok(
      sourceEvents.some((e) => e.event === 'STOP'),
      'the source paused for the switch-over',
    );
    assert.ok(
      sourceEvents.some((e) => e.event === 'MIGRATION_PASS'),
      'RAM passes are reported',
    );
    const destinationStatuses = destinationEvents
      .filter((e) => isQmpEvent(e, 'MIGRATION'))
      .map((e) => e.data.status);
    assert.ok(
      destinationStatuses.includes('active') && destinationStatuses.at(-1) === 'completed',
      destinationStatuses.join(),
    );

    assert.deepEqual(await sourceQmp.execute('query-status'), {
      running: false,
      singlestep: false,
      status: 'postmigrate',
    });
    assert.equal((await destinationQmp.execute('query-status')).status, 'running');

    // The guest carries on where it was: the destination's console continues the count.
    const lastOnSource = lastTick(readFileSync(join(dir, 'src.log'), 'utf8'));
    const after = await waitForSerial(
      join(dir, 'dst.log'),
      new RegExp(`^tick ${lastOnSource + 5}\\r?$`, 'm'),
      10_000,
    );
    assert.ok(!after.includes(GUEST_READY_LINE), 'the destination guest did not boot again');
    const firstOnDestination = Number(/^tick (\d+)/m.exec(after)?.[1]);
    assert.ok(
      firstOnDestination > lastOnSource && firstOnDestination <= lastOnSource + 3,
      `the count continues: source ended at ${lastOnSource}, destination began at ${firstOnDestination}`,
    );
  } finally {
    await sourceQmp?.close();
    await destinationQmp?.close();
    await Promise.all([source.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
});
