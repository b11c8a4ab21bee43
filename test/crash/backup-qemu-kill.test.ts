/**
 * QEMU killed with SIGKILL in the middle of backing up its running VM (an incremental): the task
 * fails with a code, the repository holds no backup from it (verify finds it whole), and the next
 * backup reads the disk in full — the checkpoint QEMU held is lost with it, and a wrong incremental
 * is never made — and restores to exactly the disk's bytes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';
import { guestBytesHash as hashOf } from '../../src/testing/disk-image.js';

const MiB = 1024 * 1024;
const base = mkdtempSync(join(tmpdir(), 'zenith-backup-qemu-kill-'));
let s: TestServer | undefined;
after(async () => {
  await s?.close();
  rmSync(base, { recursive: true, force: true });
});

/** Random bytes (they neither compress nor repeat) written into the stopped VM's disk. */
function noise(disk: string, offsetMiB: number, sizeMiB: number): void {
  const file = join(base, 'noise.bin');
  execFileSync('sh', ['-c', `head -c ${sizeMiB * MiB} /dev/urandom > ${file}`]);
  execFileSync('qemu-io', [
    '-f',
    'qcow2',
    '-c',
    `write -s ${file} ${offsetMiB}M ${sizeMiB}M`,
    disk,
  ]);
  rmSync(file);
}

test('QEMU killed during an incremental backup of its running VM: the task fails, no backup is left, and the next one reads in full and restores exactly', async () => {
  const image = await ensureGuestImage();
  s = await startTestServer();
  const token = await s.login();
  const images = join(base, 'images');
  const added = await s.request('POST', '/connections', {
    token,
    body: {
      name: 'qk',
      type: 'qemu',
      settings: {
        storageRoots: [images, dirname(image.kernel)],
        accelerator: 'tcg',
        hostName: 'qk',
      },
    },
  });
  assert.equal(added.body.state, 'connected', added.body.lastError);
  const host = (await s.request('GET', '/hosts/qk', { token })).body;
  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s!.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s!.waitForTask(token, answer.body.id, 180_000);
  };
  const created = await task('POST', '/vms', {
    name: 'qk',
    hostId: host.id,
    cpus: 1,
    memoryBytes: 128 * MiB,
    diskBytes: 192 * MiB,
    options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
  });
  assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
  const vmId = created.result.vmId as string;
  const disk = join(images, 'qk', 'disk0.qcow2');
  const repository = join(s.dataDir, 'backups', 'main');
  const registered = await s.request('POST', '/backup-repositories', {
    token,
    body: { name: 'main', path: repository },
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));

  // A full backup while stopped; then 128 MiB more, changed since its checkpoint.
  noise(disk, 0, 32);
  const first = await task('POST', `/vms/${vmId}/backups`, { repository: 'main' });
  assert.equal(first.state, 'succeeded', JSON.stringify(first.error));
  assert.equal(first.result.scope, 'full');
  noise(disk, 48, 128);
  assert.equal((await task('POST', `/vms/${vmId}/start`)).state, 'succeeded');
  const pid = (await s.request('GET', `/vms/${vmId}`, { token })).body.facts['qemu.pid'] as number;
  assert.equal(typeof pid, 'number');

  // The incremental, running: QEMU killed once a fifth of it is read.
  const submitted = await s.request('POST', `/vms/${vmId}/backups`, {
    token,
    body: { repository: 'main' },
  });
  const taskId = submitted.body.id as string;
  await until(
    'the incremental a fifth done',
    async () => {
      const now = (await s!.request('GET', `/tasks/${taskId}`, { token })).body;
      assert.notEqual(now.state, 'succeeded', 'the backup ended before the kill');
      return now.state === 'running' && now.progress >= 20 ? true : undefined;
    },
    120_000,
    20,
  );
  process.kill(pid, 'SIGKILL');
  const failed = await s.waitForTask(token, taskId, 120_000);
  assert.equal(failed.state, 'failed');
  assert.match(failed.error.code, /^ZEN_[A-Z_]+$/, JSON.stringify(failed.error));
  assert.equal(readdirSync(join(repository, 'backups')).length, 1, 'only the first backup');
  const catalogue = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
  assert.deepEqual(
    catalogue.map((b: { id: string }) => b.id),
    [first.result.backupId],
  );
  await until('the VM stopped', async () =>
    (await s!.request('GET', `/vms/${vmId}`, { token })).body.facts['power.state'] === 'stopped'
      ? true
      : undefined,
  );

  // The checkpoint went with QEMU: the next backup reads everything, and restores the disk exactly.
  const next = await task('POST', `/vms/${vmId}/backups`, { repository: 'main' });
  assert.equal(next.state, 'succeeded', JSON.stringify(next.error));
  const made = (await s.request('GET', `/backups/${next.result.backupId}`, { token })).body;
  assert.equal(made.disks[0].scope, 'full', 'never an incremental from a lost checkpoint');
  assert.equal(next.result.readBytes, 160 * MiB);
  const verified = await task('POST', '/backup-repositories/main/verify');
  assert.deepEqual(verified.result.damaged, []);
  const restored = await task('POST', `/backups/${next.result.backupId}/restore`, {
    host: 'qk',
    name: 'qk-back',
  });
  assert.equal(restored.state, 'succeeded', JSON.stringify(restored.error));
  const [directory] = readdirSync(images).filter((d) => d.startsWith('qk-back-'));
  assert.equal(hashOf(join(images, directory!, 'disk0.qcow2')), hashOf(disk));
});
