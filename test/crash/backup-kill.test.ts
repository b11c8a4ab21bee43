/**
 * A backup is durable: `zenith serve` (a real process, its local QEMU host) is killed with SIGKILL
 * in the middle of backing a VM up; the repository then holds no backup (no manifest), and after
 * the restart the task runs again and makes exactly one, which verify finds whole; the checkpoint
 * the killed read left in the disk is released, and the next backup reads only what changed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
} from '../../src/testing/guest-image.js';
import { startServerProcess, type ServerProcess } from '../../src/testing/server-process.js';
import { guestBytesHash } from '../../src/testing/disk-image.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;
const dataDir = mkdtempSync(join(tmpdir(), 'zenith-backup-kill-'));
let server: ServerProcess | undefined;
after(async () => {
  await server?.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

async function api(
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const response = await fetch(`${server!.url}/api/v1${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return response.status === 204 ? undefined : response.json();
}

const login = async () =>
  (await api(undefined, 'POST', '/auth/login', { username: 'admin', password: adminPassword }))
    .token as string;

/** A task once ended, read with the token of the moment (a new one after a restart). */
const finishedAs =
  (token: () => string) =>
  async (taskId: string, timeoutMs = 120_000) =>
    until(
      `task ${taskId}`,
      async () => {
        const task = await api(token(), 'GET', `/tasks/${taskId}`).catch(() => undefined);
        return task && ['succeeded', 'failed', 'cancelled'].includes(task.state) ? task : undefined;
      },
      timeoutMs,
      100,
    );

const bitmapsOf = (disk: string): string[] =>
  (
    JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk]).toString())[
      'format-specific'
    ]?.data?.bitmaps ?? []
  ).map((b: { name: string }) => b.name);

test('kill -9 in the middle of a backup: no backup until the task, run again after the restart, makes exactly one', async () => {
  const image = await ensureGuestImage();
  const images = join(dataDir, 'images');
  server = await startServerProcess({ dataDir });
  let token = await login();
  const finished = finishedAs(() => token);
  const added = await api(token, 'POST', '/connections', {
    name: 'kb-host',
    type: 'qemu',
    settings: { storageRoots: [images, join(image.kernel, '..')], accelerator: 'tcg' },
  });
  assert.equal(added.state, 'connected', JSON.stringify(added));
  const host = (await api(token, 'GET', '/hosts')).items[0];
  const created = await api(token, 'POST', '/vms', {
    name: 'kb',
    hostId: host.id,
    cpus: 1,
    memoryBytes: 128 * MiB,
    diskBytes: 160 * MiB,
    options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
  });
  const made = await finished(created.id);
  assert.equal(made.state, 'succeeded', JSON.stringify(made.error));
  const vmId = made.result.vmId as string;
  // Random bytes (they neither compress nor repeat): a backup long enough to be killed in.
  const disk = join(images, 'kb', 'disk0.qcow2');
  const noise = join(dataDir, 'noise.bin');
  execFileSync('sh', ['-c', `head -c ${128 * MiB} /dev/urandom > ${noise}`]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -s ${noise} 0 128M`, disk]);
  rmSync(noise);
  const repository = join(dataDir, 'backups', 'main');
  const registered = await api(token, 'POST', '/backup-repositories', {
    name: 'main',
    path: repository,
  });
  assert.equal(registered.repository?.name, 'main', JSON.stringify(registered));

  const submitted = await api(token, 'POST', `/vms/${vmId}/backups`, { repository: 'main' });
  const taskId = submitted.id as string;
  await until(
    'the backup a fifth done',
    async () => {
      const task = await api(token, 'GET', `/tasks/${taskId}`);
      assert.equal(task.state === 'succeeded', false, 'the backup ended before the kill');
      return task.state === 'running' && task.progress >= 20 ? true : undefined;
    },
    120_000,
    20,
  );
  await server.kill('SIGKILL');
  // Chunks, a lease and the read's checkpoint, but no manifest: no backup for any reader.
  assert.deepEqual(readdirSync(join(repository, 'backups')), []);
  assert.equal(readdirSync(join(repository, 'writers')).length, 1);
  const stray = bitmapsOf(disk);
  assert.equal(stray.length, 1, `the killed read's checkpoint: ${stray.join(', ')}`);

  server = await startServerProcess({ dataDir });
  token = await login();
  const task = await finished(taskId, 180_000);
  assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
  assert.equal(task.attempt, 2);
  assert.equal(task.result.scope, 'full');
  assert.equal(task.result.readBytes, 128 * MiB);
  const catalogue = (await api(token, 'GET', `/backups?vm=${vmId}`)).items;
  assert.deepEqual(
    catalogue.map((b: { id: string; taskId: string }) => [b.id, b.taskId]),
    [[task.result.backupId, taskId]],
    'exactly one backup, made by the task',
  );
  assert.equal(readdirSync(join(repository, 'backups')).length, 1);
  // The killed read's checkpoint is gone; the disk keeps only the backup's own.
  assert.deepEqual(bitmapsOf(disk), [catalogue[0].disks[0].checkpoint]);
  assert.ok(!bitmapsOf(disk).includes(stray[0]!));

  const verified = await api(token, 'POST', '/backup-repositories/main/verify');
  const report = await finished(verified.id);
  assert.equal(report.state, 'succeeded', JSON.stringify(report.error));
  assert.deepEqual(report.result.damaged, []);
  // Nothing changed since: the next backup reads nothing.
  const next = await finished(
    (await api(token, 'POST', `/vms/${vmId}/backups`, { repository: 'main' })).id,
  );
  assert.equal(next.state, 'succeeded', JSON.stringify(next.error));
  assert.deepEqual([next.result.scope, next.result.readBytes], ['incremental', 0]);
});

test('kill -9 in the middle of a backup job’s run: after the restart the run goes on, and each VM is backed up once by it', async () => {
  let token = await login();
  const finished = finishedAs(() => token);
  const host = (await api(token, 'GET', '/hosts')).items[0];
  const image = await ensureGuestImage();
  // A second VM never backed up, full of random bytes: its backup is long enough to be killed in.
  const created = await api(token, 'POST', '/vms', {
    name: 'kb2',
    hostId: host.id,
    cpus: 1,
    memoryBytes: 128 * MiB,
    diskBytes: 128 * MiB,
    options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
  });
  const made = await finished(created.id);
  assert.equal(made.state, 'succeeded', JSON.stringify(made.error));
  const second = made.result.vmId as string;
  const noise = join(dataDir, 'noise.bin');
  execFileSync('sh', ['-c', `head -c ${96 * MiB} /dev/urandom > ${noise}`]);
  execFileSync('qemu-io', [
    '-f',
    'qcow2',
    '-c',
    `write -s ${noise} 0 96M`,
    join(dataDir, 'images', 'kb2', 'disk0.qcow2'),
  ]);
  rmSync(noise);
  // Every VM (kb, then kb2), one at a time on the host.
  const job = await api(token, 'POST', '/backup-jobs', {
    name: 'all',
    repository: 'main',
    concurrency: { perHost: 1 },
  });
  assert.ok(job.id, JSON.stringify(job));
  const run = (await api(token, 'POST', `/backup-jobs/${job.id}/run`)).id as string;
  const child = await until(
    'kb2’s backup a fifth done',
    async () => {
      const tasks = (await api(token, 'GET', `/tasks?targetId=${second}`)).items as Array<{
        id: string;
        kind: string;
        state: string;
        progress: number;
      }>;
      const backup = tasks.find((t) => t.kind === 'backup.create');
      assert.notEqual(backup?.state, 'succeeded', 'the backup ended before the kill');
      return backup?.state === 'running' && backup.progress >= 20 ? backup.id : undefined;
    },
    120_000,
    20,
  );
  await server!.kill('SIGKILL');

  server = await startServerProcess({ dataDir });
  token = await login();
  const ended = await finished(run, 180_000);
  assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
  assert.equal(ended.attempt, 2, 'the run went on after the restart');
  const byVm = Object.fromEntries(
    ended.result.vms.map((vm: { vmName: string; taskId: string; state: string }) => [
      vm.vmName,
      vm,
    ]),
  );
  assert.deepEqual(Object.keys(byVm).sort(), ['kb', 'kb2']);
  assert.equal(byVm.kb2.taskId, child, 'the backup asked for before the kill, waited for');
  assert.equal(byVm.kb2.state, 'succeeded');
  // One backup.create for kb2, run again after the restart; one backup of each VM by the job.
  const kb2Backups = (await api(token, 'GET', `/tasks?targetId=${second}`)).items.filter(
    (t: { kind: string }) => t.kind === 'backup.create',
  );
  assert.deepEqual(
    kb2Backups.map((t: { id: string; attempt: number }) => [t.id, t.attempt]),
    [[child, 2]],
  );
  const byJob = (await api(token, 'GET', '/backups?repository=main')).items.filter(
    (b: { jobId: string | null }) => b.jobId === job.id,
  );
  assert.deepEqual(byJob.map((b: { vmName: string }) => b.vmName).sort(), ['kb', 'kb2']);
});

test('kill -9 while a backup job restore-tests what it backed up: after the restart the run waits for that test, and no backup is tested twice by it', async () => {
  let token = await login();
  const finished = finishedAs(() => token);
  const host = (await api(token, 'GET', '/hosts')).items[0];
  const kb2 = (await api(token, 'GET', '/vms/kb2')).id as string;
  const job = await api(token, 'POST', '/backup-jobs', {
    name: 'tested',
    repository: 'main',
    selector: "vm.name == 'kb2'",
    restoreTest: { host: host.name, marker: GUEST_READY_LINE, timeoutSeconds: 120 },
  });
  assert.ok(job.id, JSON.stringify(job));
  const testsOnHost = async () =>
    (
      (await api(token, 'GET', `/tasks?targetId=${host.id}&limit=1000`)).items as Array<{
        id: string;
        kind: string;
        state: string;
        attempt: number;
      }>
    ).filter((t) => t.kind === 'backup.test');
  const before = new Set((await testsOnHost()).map((t) => t.id));
  const run = (await api(token, 'POST', `/backup-jobs/${job.id}/run`)).id as string;
  const test = await until(
    'the run’s restore test to be under way',
    async () => {
      const mine = (await testsOnHost()).find((t) => !before.has(t.id));
      assert.notEqual(mine?.state, 'succeeded', 'the test ended before the kill');
      return mine?.state === 'running' ? mine.id : undefined;
    },
    120_000,
    20,
  );
  await server!.kill('SIGKILL');

  server = await startServerProcess({ dataDir });
  token = await login();
  const ended = await finished(run, 240_000);
  assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
  assert.equal(ended.attempt, 2, 'the run went on after the restart');
  assert.deepEqual(
    ended.result.restoreTests.map((t: { vmName: string; taskId: string; state: string }) => [
      t.vmName,
      t.taskId,
      t.state,
    ]),
    [['kb2', test, 'succeeded']],
    'the test asked for before the kill, waited for',
  );
  const tests = (await testsOnHost()).filter((t) => !before.has(t.id));
  assert.deepEqual(
    tests.map((t) => t.id),
    [test],
    'one restore test by the run',
  );
  const left = (
    (await api(token, 'GET', '/vms?limit=200')).items as Array<{
      id: string;
      name: string;
      status: string;
    }>
  ).filter((vm) => vm.status === 'present' && vm.name.startsWith('kb2-test-'));
  assert.deepEqual(left, [], 'the test VM is gone');
  assert.equal((await api(token, 'GET', `/vms/${kb2}`)).facts['power.state'], 'stopped');
});

test('kill -9 in the middle of a restore: after the restart the restore runs again over what the cut-off run wrote, and makes exactly one VM, its disk as backed up', async () => {
  let token = await login();
  const finished = finishedAs(() => token);
  const host = (await api(token, 'GET', '/hosts')).items[0];
  const kb2 = (await api(token, 'GET', '/vms/kb2')).id as string;
  const [newest] = (await api(token, 'GET', `/backups?vm=${kb2}`)).items as Array<{ id: string }>;
  assert.ok(newest, 'kb2 has backups');
  const restore = (
    await api(token, 'POST', `/backups/${newest.id}/restore`, {
      host: host.name,
      name: 'kb2-back',
    })
  ).id as string;
  await until(
    'the restore to be writing',
    async () => {
      const task = await api(token, 'GET', `/tasks/${restore}`);
      assert.notEqual(task.state, 'succeeded', 'the restore ended before the kill');
      return task.state === 'running' ? true : undefined;
    },
    120_000,
    10,
  );
  await server!.kill('SIGKILL');

  server = await startServerProcess({ dataDir });
  token = await login();
  const ended = await finished(restore, 180_000);
  assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
  assert.equal(ended.attempt, 2, 'the restore ran again after the restart');
  const copies = (
    (await api(token, 'GET', '/vms?limit=200')).items as Array<{
      id: string;
      name: string;
      status: string;
    }>
  ).filter((vm) => vm.status === 'present' && vm.name === 'kb2-back');
  assert.deepEqual(
    copies.map((vm) => vm.id),
    [ended.result.vmId],
    'exactly one VM made',
  );
  const staged = readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).filter((file) =>
    file.endsWith('.zenith-partial'),
  );
  assert.deepEqual(staged, [], 'no staging file left');
  const restoredDisk = readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).find(
    (file) => file.includes('kb2-back') && file.endsWith('.qcow2'),
  );
  assert.ok(restoredDisk, 'the restored disk');
  assert.equal(
    guestBytesHash(join(dataDir, restoredDisk)),
    guestBytesHash(join(dataDir, 'images', 'kb2', 'disk0.qcow2')),
    'the disk as backed up (kb2 has not run since)',
  );
});

test('kill -9 in the middle of a disk restore: after the restart it runs again over what the cut-off run wrote, and the VM has exactly one restored disk, as backed up', async () => {
  let token = await login();
  const finished = finishedAs(() => token);
  const target = await api(token, 'GET', '/vms/kb2-back');
  const [newest] = (await api(token, 'GET', '/backups?vm=kb')).items as Array<{ id: string }>;
  assert.ok(newest, 'kb has backups');
  const restore = (
    await api(token, 'POST', `/backups/${newest.id}/disks/disk0/restore`, { vm: 'kb2-back' })
  ).id as string;
  assert.ok(restore, 'the disk restore was queued');
  await until(
    'the disk restore to be writing',
    async () => {
      const task = await api(token, 'GET', `/tasks/${restore}`);
      assert.notEqual(task.state, 'succeeded', 'the disk restore ended before the kill');
      return task.state === 'running' && task.progress > 0 ? true : undefined;
    },
    120_000,
    10,
  );
  await server!.kill('SIGKILL');

  server = await startServerProcess({ dataDir });
  token = await login();
  const ended = await finished(restore, 180_000);
  assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
  assert.equal(ended.attempt, 2, 'the disk restore ran again after the restart');
  const now = await api(token, 'GET', `/vms/${target.id}`);
  assert.equal(
    now.facts['disk.totalBytes'],
    target.facts['disk.totalBytes'] + 160 * MiB,
    'exactly one disk added',
  );
  const files = readdirSync(dataDir, { recursive: true, encoding: 'utf8' });
  assert.deepEqual(
    files.filter((file) => file.endsWith('.zenith-partial')),
    [],
    'no staging file left',
  );
  const restored = files.filter(
    (file) => file.includes('kb2-back-disk0-restored') && file.endsWith('.qcow2'),
  );
  assert.deepEqual(
    restored.map((file) => join(dataDir, file)),
    [ended.result.path],
    'one image written, the one the VM has',
  );
  const download = await fetch(`${server.url}/api/v1/backups/${newest.id}/disks/disk0/download`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  const backedUp = createHash('sha256')
    .update(Buffer.from(await download.arrayBuffer()))
    .digest('hex');
  assert.equal(guestBytesHash(ended.result.path), backedUp, 'the disk as backed up');
});
