/**
 * One disk of a backup restored into an existing VM through the API, on a real QEMU host: added
 * to another stopped VM (its bytes those of the backed-up disk, claimed for that VM), over a disk
 * of the original (its contents as at the backup's point, its old image gone; a second request at
 * once refused), and the refusals — an unknown disk, a disk the VM lacks, a running VM, a restorer
 * who may not change the VM, a host without disk streams, a group's quota, a damaged backup.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { restoreBackupDisk } from '../../src/api/backups.js';
import { DiskClaims } from '../../src/hypervisors/qemu/disk-claims.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { guestBytesHash as hashOf } from '../../src/testing/disk-image.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

const MiB = 1024 * 1024;

describe('restoring one disk of a backup into a VM (real QEMU)', () => {
  let s: TestServer;
  let token: string;
  const base = mkdtempSync(join(tmpdir(), 'zenith-disk-restore-'));
  const root = join(base, 'a');
  const ids: Record<string, string> = {};
  let backupId = '';
  let pointHash = '';

  const restorePath = (backup: string, disk: string) =>
    restoreBackupDisk.path.replace(':id', backup).replace(':diskId', disk);
  const task = async (method: string, path: string, body?: unknown, as = token) => {
    const answer = await s.request(method, path, { token: as, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(as, answer.body.id, 120_000);
  };
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const done = await task(method, path, body);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result;
  };
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  const write = (image: string, pattern: number, offset: number, length: number) =>
    execFileSync('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      `write -P ${pattern} ${offset} ${length}`,
      image,
    ]);

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'dr-a',
        type: 'qemu',
        settings: {
          storageRoots: [root, dirname(image.kernel)],
          accelerator: 'tcg',
          hostName: 'dr-a',
        },
      },
    });
    assert.equal(added.body.state, 'connected', added.body.lastError);
    const host = (await s.request('GET', '/hosts/dr-a', { token })).body;
    for (const [name, diskBytes] of [
      ['dr-src', 16 * MiB],
      ['dr-other', 8 * MiB],
    ] as const) {
      const created = await succeeded('POST', '/vms', {
        name,
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * MiB,
        diskBytes,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      });
      ids[name] = created.vmId;
    }
    const disk = join(root, 'dr-src', 'disk0.qcow2');
    write(disk, 0x11, 0, 2 * MiB);
    write(disk, 0x22, 12 * MiB, 1 * MiB);
    pointHash = hashOf(disk);
    const repository = await s.request('POST', '/backup-repositories', {
      token,
      body: { name: 'main', path: join(s.dataDir, 'backups', 'main') },
    });
    assert.equal(repository.status, 201, JSON.stringify(repository.body));
    const backup = await succeeded('POST', `/vms/${ids['dr-src']}/backups`, {
      repository: 'main',
    });
    backupId = backup.backupId;
  });
  after(async () => {
    for (const each of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (each.facts['power.state'] !== 'stopped')
        await task('POST', `/vms/${each.id}/stop`).catch(() => undefined);
    await s.close();
    rmSync(base, { recursive: true, force: true });
  });

  test("added to another stopped VM: a new disk of the backup's capacity, its bytes the backed-up disk's, claimed for that VM", async () => {
    const other = await vm(ids['dr-other']!);
    const restored = await succeeded('POST', restorePath(backupId, 'disk0'), { vm: 'dr-other' });
    assert.equal(restored.vmId, other.id);
    assert.equal(restored.vmDiskId, 'disk1');
    assert.equal(restored.replaced, false);
    assert.equal(restored.capacityBytes, 16 * MiB);
    assert.equal(hashOf(restored.path), pointHash);
    const now = await vm(other.id);
    assert.equal(now.facts['disk.totalBytes'], 24 * MiB, 'its own disk and the restored one');
    assert.equal(now.facts['vm.uuid'], other.facts['vm.uuid'], 'the same VM');
    assert.equal(new DiskClaims([root]).owner(restored.path)?.vm, other.facts['vm.uuid']);
    assert.ok(existsSync(join(root, 'dr-other', 'disk0.qcow2')), 'its own disk stays');
    const audited = (await s.request('GET', '/audit?action=backup.restoreDisk', { token })).body
      .items;
    assert.equal(audited[0]?.targetId, other.id, JSON.stringify(audited[0]));
    // The VM reads it: its next backup has both disks, the new one as backed up.
    const next = await succeeded('POST', `/vms/${other.id}/backups`, { repository: 'main' });
    const shown = (await s.request('GET', `/backups/${next.backupId}`, { token })).body;
    assert.deepEqual(
      shown.disks.map((d: { diskId: string; capacityBytes: number }) => [
        d.diskId,
        d.capacityBytes,
      ]),
      [
        ['disk0', 8 * MiB],
        ['disk1', 16 * MiB],
      ],
    );
  });

  test('over a disk of the original, named: its contents as at the backup, its old image gone, the same VM', async () => {
    const oldDisk = join(root, 'dr-src', 'disk0.qcow2');
    write(oldDisk, 0x66, 0, 4 * MiB);
    assert.notEqual(hashOf(oldDisk), pointHash);
    const original = await vm(ids['dr-src']!);
    // Asked twice at once: the first replaces the disk; the second finds it changed and refuses
    // (replacing it too would leave the first one's image behind, no VM's).
    const [first, second] = await Promise.all(
      [1, 2].map(() =>
        s.request('POST', restorePath(backupId, 'disk0'), { token, body: { replace: 'disk0' } }),
      ),
    );
    const ended = await Promise.all(
      [first!, second!].map((answer) => s.waitForTask(token, answer.body.id, 120_000)),
    );
    assert.deepEqual(ended.map((t) => [t.state, t.error?.code ?? null]).sort(), [
      ['failed', 'ZEN_CONFLICT'],
      ['succeeded', null],
    ]);
    const restored = ended.find((t) => t.state === 'succeeded')!.result;
    assert.deepEqual(
      [restored.vmId, restored.vmDiskId, restored.replaced],
      [original.id, 'disk0', true],
    );
    assert.equal(hashOf(restored.path), pointHash);
    assert.equal(existsSync(oldDisk), false, 'the image it had is gone');
    const now = await vm(original.id);
    assert.equal(now.facts['vm.uuid'], original.facts['vm.uuid']);
    assert.equal(now.facts['disk.totalBytes'], 16 * MiB);
    assert.equal(new DiskClaims([root]).owner(restored.path)?.vm, original.facts['vm.uuid']);
    assert.equal(
      readdirSync(root).filter((d) => d.startsWith('dr-src-disk0-restored-')).length,
      1,
      'one image written',
    );
  });

  test('refusals: an unknown disk, a disk the VM lacks, a running VM, a restorer who may not change the VM, a host without disk streams, a quota, a damaged backup', async () => {
    const refusals: Array<[string, unknown, number, string]> = [
      ['disk7', {}, 404, 'ZEN_NOT_FOUND'],
      ['disk0', { vm: 'dr-other', replace: 'disk5' }, 404, 'ZEN_NOT_FOUND'],
      ['disk0', { vm: 'no-such-vm' }, 404, 'ZEN_NOT_FOUND'],
      ['disk0', { replace: 'sda' }, 400, 'ZEN_BAD_REQUEST'],
    ];
    for (const [disk, body, status, code] of refusals) {
      const refused = await s.request('POST', restorePath(backupId, disk), { token, body });
      assert.deepEqual(
        [refused.status, refused.body.error?.code],
        [status, code],
        `${disk} ${JSON.stringify(body)}: ${JSON.stringify(refused.body)}`,
      );
    }
    const unknown = await s.request('POST', restorePath(backupId, 'disk7'), { token, body: {} });
    assert.deepEqual(unknown.body.error.details.disks, ['disk0']);

    // May restore backups of dr-src (and change it), only read dr-other.
    await s.request('POST', '/users', {
      token,
      body: { name: 'rhea', password: 'correct horse battery', role: 'viewer' },
    });
    const bound = await s.request('POST', '/role-bindings', {
      token,
      body: { subject: 'rhea', role: 'operator', scope: ids['dr-src'] },
    });
    assert.equal(bound.status, 201, JSON.stringify(bound.body));
    const rhea = await s.login('rhea', 'correct horse battery');
    const forbidden = await s.request('POST', restorePath(backupId, 'disk0'), {
      token: rhea,
      body: { vm: 'dr-other' },
    });
    assert.deepEqual([forbidden.status, forbidden.body.error?.code], [403, 'ZEN_FORBIDDEN']);

    await succeeded('POST', `/vms/${ids['dr-other']}/start`);
    const running = await s.request('POST', restorePath(backupId, 'disk0'), {
      token,
      body: { vm: 'dr-other' },
    });
    assert.deepEqual([running.status, running.body.error?.code], [409, 'ZEN_INVALID_STATE']);
    await succeeded('POST', `/vms/${ids['dr-other']}/stop`);

    // A VM on a host without disk streams (the simulated hypervisor).
    const lab = await s.request('POST', '/connections', {
      token,
      body: { name: 'lab', type: 'simulated', settings: { hostsPerCluster: 1, vmsPerHost: 1 } },
    });
    assert.equal(lab.status, 201, JSON.stringify(lab.body));
    const simulated = (
      (await s.request('GET', '/vms?limit=100', { token })).body.items as Array<{
        id: string;
        connectionId: string;
      }>
    ).find((each) => each.connectionId === lab.body.id)!;
    const unsupported = await s.request('POST', restorePath(backupId, 'disk0'), {
      token,
      body: { vm: simulated.id },
    });
    assert.deepEqual(
      [unsupported.status, unsupported.body.error?.code],
      [422, 'ZEN_UNSUPPORTED'],
      JSON.stringify(unsupported.body),
    );

    // What the VM grows by counts against its group's quota, as a reconfiguration's growth does.
    for (const [method, path, body] of [
      ['POST', '/groups', { name: 'team' }],
      ['PUT', `/vms/${ids['dr-other']}/ownership`, { group: 'team' }],
      ['PUT', '/groups/team/quota', { diskBytes: 32 * MiB }],
    ] as const) {
      const done = await s.request(method, path, { token, body });
      assert.ok(done.status < 300, `${path}: ${JSON.stringify(done.body)}`);
    }
    const overQuota = await s.request('POST', restorePath(backupId, 'disk0'), {
      token,
      body: { vm: 'dr-other' },
    });
    assert.deepEqual(
      [overQuota.status, overQuota.body.error?.code, overQuota.body.error?.details?.resource],
      [409, 'ZEN_QUOTA_EXCEEDED', 'diskBytes'],
      JSON.stringify(overQuota.body),
    );

    // A damaged backup, as a restore.
    const chunks = join(s.dataDir, 'backups', 'main', 'chunks');
    for (const prefix of readdirSync(chunks))
      for (const name of readdirSync(join(chunks, prefix))) {
        const file = join(chunks, prefix, name);
        const bytes = readFileSync(file);
        bytes[bytes.length - 1]! ^= 0xff;
        writeFileSync(file, bytes);
      }
    await succeeded('POST', '/backup-repositories/main/verify');
    const damaged = await s.request('POST', restorePath(backupId, 'disk0'), {
      token,
      body: { vm: 'dr-other' },
    });
    assert.deepEqual([damaged.status, damaged.body.error?.code], [409, 'ZEN_BACKUP_CHUNK_DAMAGED']);
  });
});
