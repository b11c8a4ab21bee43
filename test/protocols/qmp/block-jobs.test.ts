import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  connectQmp,
  type QmpClient,
  type QmpEventMessage,
} from '../../../src/protocols/qmp/index.js';
import { startTestQemu } from '../../../src/testing/qemu.js';

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });

test('drive-mirror copies a disk to a new image, reports READY, and pivots on block-job-complete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-mirror-'));
  const source = join(dir, 'source.qcow2');
  const target = join(dir, 'target.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', source, '32M');
  execFileSync('qemu-io', [
    '-f',
    'qcow2',
    '-c',
    'write -P 0xab 0 4M',
    '-c',
    'write -P 0x5a 20M 1M',
    source,
  ]);
  qemuImg('create', '-q', '-f', 'qcow2', target, '32M');
  const qemu = await startTestQemu({
    qmpSocket: join(dir, 'qmp.sock'),
    guest: false,
    extraArgs: ['-drive', `file=${source},if=none,id=disk0,format=qcow2`],
  });
  let qmp: QmpClient | undefined;
  try {
    qmp = await connectQmp(join(dir, 'qmp.sock'));
    const [block] = await qmp.execute('query-block');
    assert.equal(block?.device, 'disk0');
    assert.equal(block?.inserted?.file, source);
    assert.equal(block?.inserted?.image['virtual-size'], 32 * 1024 * 1024);

    const events: QmpEventMessage[] = [];
    qmp.onEvent((event) => events.push(event));
    const ready = qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 20_000 });
    await qmp.execute('drive-mirror', {
      'job-id': 'mirror0',
      device: 'disk0',
      target,
      format: 'qcow2',
      mode: 'existing',
      sync: 'full',
    });
    const readyEvent = await ready;
    assert.equal(readyEvent.data.device, 'mirror0');
    assert.equal(readyEvent.data.type, 'mirror');
    const [job] = await qmp.execute('query-block-jobs');
    assert.deepEqual(
      {
        device: job?.device,
        ready: job?.ready,
        status: job?.status,
        copied: job?.len === job?.offset,
      },
      { device: 'mirror0', ready: true, status: 'ready', copied: true },
    );

    const completed = qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 20_000 });
    await qmp.execute('block-job-complete', { device: 'mirror0' });
    const done = await completed;
    assert.equal(done.data.error, undefined);
    assert.equal(
      (await qmp.execute('query-block'))[0]?.inserted?.file,
      target,
      'the drive now uses the copy',
    );
    assert.deepEqual(await qmp.execute('query-block-jobs'), []);
    const statuses = events
      .filter((e) => e.event === 'JOB_STATUS_CHANGE')
      .map((e) => (e.data as { status: string }).status);
    assert.deepEqual(statuses.slice(0, 3), ['created', 'running', 'ready']);
    assert.equal(statuses.at(-1), 'null');
    const stats = await qmp.execute('query-blockstats');
    assert.equal(stats[0]?.device, 'disk0');
    assert.equal(typeof stats[0]?.stats.rd_bytes, 'number');
  } finally {
    await qmp?.close();
    await qemu.stop();
  }
  // Byte for byte the same disk, as qemu-img sees it once QEMU has let go.
  assert.match(
    qemuImg('compare', '-f', 'qcow2', '-F', 'qcow2', source, target),
    /Images are identical/,
  );
  rmSync(dir, { recursive: true, force: true });
});

test('block-job-cancel on a ready mirror leaves the drive on the source', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-mirror-'));
  const source = join(dir, 'source.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', source, '8M');
  const qemu = await startTestQemu({
    qmpSocket: join(dir, 'qmp.sock'),
    guest: false,
    extraArgs: ['-drive', `file=${source},if=none,id=disk0,format=qcow2`],
  });
  let qmp: QmpClient | undefined;
  try {
    qmp = await connectQmp(join(dir, 'qmp.sock'));
    const ready = qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 20_000 });
    await qmp.execute('drive-mirror', {
      device: 'disk0',
      target: join(dir, 'copy.qcow2'),
      format: 'qcow2',
      sync: 'full',
    });
    await ready;
    // Cancelling a ready mirror completes it without pivoting (QEMU reports COMPLETED, not CANCELLED).
    const finished = qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 20_000 });
    await qmp.execute('block-job-cancel', { device: 'disk0' });
    await finished;
    assert.equal((await qmp.execute('query-block'))[0]?.inserted?.file, source);
  } finally {
    await qmp?.close();
    await qemu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
