import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { connectQmp, runJob, type QmpClient } from '../../../src/protocols/qmp/index.js';
import { startTestQemu } from '../../../src/testing/qemu.js';

test('snapshot jobs run to their end, are dismissed, and a failed one is QMP_JOB_FAILED with QEMU’s reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-jobs-'));
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
  const qemu = await startTestQemu({
    qmpSocket: join(dir, 'qmp.sock'),
    guest: false,
    extraArgs: ['-drive', `file=${disk},if=none,id=disk0,format=qcow2`],
  });
  let qmp: QmpClient | undefined;
  try {
    qmp = await connectQmp(join(dir, 'qmp.sock'));
    const node = (await qmp.execute('query-block'))[0]!.inserted!['node-name']!;
    const statuses: string[] = [];
    qmp.on('JOB_STATUS_CHANGE', (e) => statuses.push(`${e.data.id}:${e.data.status}`));

    const saved = await runJob(qmp, 'snapshot-save', {
      'job-id': 'save-1',
      tag: 'first',
      vmstate: node,
      devices: [node],
    });
    assert.deepEqual(
      [saved.type, saved.status, saved.error],
      ['snapshot-save', 'concluded', undefined],
    );
    const image = (await qmp.execute('query-block'))[0]!.inserted!.image;
    assert.deepEqual(
      image.snapshots?.map((s) => [s.name, s['vm-state-size'] > 0]),
      [['first', true]],
      'the image holds the snapshot, with the VM state',
    );
    assert.deepEqual(await qmp.execute('query-jobs'), [], 'the job was dismissed');

    const again = runJob(qmp, 'snapshot-save', {
      'job-id': 'save-2',
      tag: 'first',
      vmstate: node,
      devices: [node],
    });
    await assert.rejects(
      again,
      (e) =>
        isZenithError(e) &&
        e.code === 'QMP_JOB_FAILED' &&
        e.details.jobId === 'save-2' &&
        /already exists/.test(String(e.details.error)),
    );
    const missing = runJob(qmp, 'snapshot-load', {
      'job-id': 'load-1',
      tag: 'no-such-snapshot',
      vmstate: node,
      devices: [node],
    });
    await assert.rejects(missing, (e) => isZenithError(e) && e.code === 'QMP_JOB_FAILED');
    assert.deepEqual(await qmp.execute('query-jobs'), [], 'failed jobs are dismissed too');

    await runJob(qmp, 'snapshot-delete', { 'job-id': 'delete-1', tag: 'first', devices: [node] });
    assert.equal((await qmp.execute('query-block'))[0]!.inserted!.image.snapshots, undefined);
    assert.ok(statuses.includes('save-1:concluded') && statuses.includes('save-1:null'));
  } finally {
    await qmp?.close();
    await qemu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
