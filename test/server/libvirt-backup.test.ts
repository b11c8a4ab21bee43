/**
 * Backup of VMs on a libvirt host (a real libvirtd and a real QEMU domain under TCG), restored onto
 * a QEMU host of the same control plane: stopped (its disk file read by qemu-nbd), running
 * (libvirt's pull-mode backup: a point-in-time export while the guest writes on, with a libvirt
 * checkpoint), then only what changed since that checkpoint. The guest writes a numbered pattern
 * to its disk all along: the restored disk holds exactly a prefix of it. A backup job a killed read
 * left in libvirt is ended by the next read; one Zenith did not start is left alone.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TestServer } from '../../src/testing/control-plane.js';
import { guestBytes, guestBytesHash, patternPrefix } from '../../src/testing/disk-image.js';
import { consoleTicks, GuestConsole } from '../../src/testing/guest-console.js';
import { GUEST_READY_LINE, guestAppend } from '../../src/testing/guest-image.js';
import { type LibvirtdDaemon } from '../../src/testing/libvirtd.js';
import { startLibvirtAndQemu } from '../../src/testing/libvirt-and-qemu.js';

const MiB = 1024 * 1024;

describe('backup of VMs on a libvirt host (real libvirtd, real QEMU), restored onto a QEMU host', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const base = mkdtempSync(join(tmpdir(), 'zenith-libvirt-backup-'));
  const poolDir = join(base, 'pool');
  const qemuRoot = join(base, 'qemu');
  let vmId = '';
  const disk = () => join(poolDir, 'lvb-disk0.qcow2');
  const virsh = (...args: string[]) =>
    execFileSync('virsh', ['-c', `qemu:///system?socket=${daemon.socketPath}`, ...args], {
      encoding: 'utf8',
    });

  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 180_000);
  };
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const done = await task(method, path, body);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result;
  };
  /** The guest's disk as restored onto the QEMU host, as raw bytes. */
  const restoredBytes = async (backupId: string, name: string) => {
    const restored = await succeeded('POST', `/backups/${backupId}/restore`, {
      host: 'lq-b',
      name,
    });
    const [dir] = readdirSync(qemuRoot).filter((d) => d.startsWith(`${name}-`));
    const bytes = guestBytes(join(qemuRoot, dir!, 'disk0.qcow2'));
    return { bytes, vmId: restored.vmId as string };
  };

  before(async () => {
    ({ daemon, s, token, image } = await startLibvirtAndQemu(base));
    const repository = await s.request('POST', '/backup-repositories', {
      token,
      body: { name: 'main', path: join(s.dataDir, 'backups', 'main') },
    });
    assert.equal(repository.status, 201, JSON.stringify(repository.body));
    const created = await succeeded('POST', '/vms', {
      name: 'lvb',
      hostId: (await s.request('GET', '/hosts/lv-a', { token })).body.id,
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: 16 * MiB,
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ pattern: true }),
      },
    });
    vmId = created.vmId;
  });
  after(async () => {
    for (const each of (await s?.request('GET', '/vms?limit=100', { token }))?.body.items ?? [])
      if (each.facts['power.state'] !== 'stopped')
        await task('POST', `/vms/${each.id}/stop`).catch(() => undefined);
    await s?.close();
    await daemon?.stop();
    rmSync(base, { recursive: true, force: true });
  });

  test('stopped, then running, then only what changed: each restored onto a QEMU host holds exactly a prefix of what the guest wrote', async (t) => {
    const capabilities = (await s.request('GET', `/vms/${vmId}/capabilities`, { token })).body;
    assert.ok(capabilities.capabilities.includes('vm.backup'), JSON.stringify(capabilities));

    // Stopped: the file read by qemu-nbd; only the chunk with data is read. libvirt makes no
    // checkpoint of an inactive domain, so the next backup reads in full.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0 8M 1M`, disk()]);
    const stopped = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(stopped.scope, 'full');
    assert.equal(stopped.readBytes, 4 * MiB);

    await succeeded('POST', `/vms/${vmId}/start`);
    const console = await GuestConsole.ofVm(s, token, vmId);
    const prefixes: number[] = [];
    try {
      for (const scope of ['full', 'incremental']) {
        const {
          before,
          after,
          result: backup,
        } = await console.patternAround(48 + prefixes.length * 64, () =>
          succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' }),
        );
        assert.equal(backup.scope, scope);
        if (scope === 'incremental')
          assert.ok(backup.readBytes <= 4 * MiB, `read ${backup.readBytes} bytes`);
        const { bytes, vmId: copy } = await restoredBytes(backup.backupId, `lvb-${scope}`);
        const prefix = patternPrefix(bytes);
        t.diagnostic(
          `${scope}: ${before} said before, ${prefix} in the backup, ${after} at most after`,
        );
        assert.ok(prefix >= before && prefix <= after, `${scope}: ${prefix} blocks`);
        prefixes.push(prefix);
        // The restored VM is a VM of the QEMU host that boots.
        const restored = (await s.request('GET', `/vms/${copy}`, { token })).body;
        assert.equal(restored.computed['location.hostName'], 'lq-b');
      }
    } finally {
      console.close();
    }
    assert.ok(prefixes[1]! > prefixes[0]!, prefixes.join(', '));
    // The full backup's checkpoint was released once the incremental was safe: one is left.
    assert.equal(
      virsh('checkpoint-list', 'lvb', '--name').trim().split('\n').filter(Boolean).length,
      1,
    );
  });

  test('a backup job a killed read left is ended by the next backup; one Zenith did not start is left alone, and the backup refused', async () => {
    // What a read killed after libvirt began its job leaves: a pull-mode job on a socket of ours.
    const left = join(base, 'left.xml');
    const socket = join(tmpdir(), `zenith-nbd-${Date.now().toString(16)}.sock`);
    writeFileSync(
      left,
      `<domainbackup mode='pull'><server transport='unix' socket='${socket}'/></domainbackup>`,
    );
    virsh('backup-begin', 'lvb', left);
    const next = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(next.scope, 'incremental');

    const foreign = join(base, 'foreign.xml');
    writeFileSync(
      foreign,
      `<domainbackup mode='pull'><server transport='unix' socket='${join(base, 'other.sock')}'/></domainbackup>`,
    );
    virsh('backup-begin', 'lvb', foreign);
    try {
      const refused = await task('POST', `/vms/${vmId}/backups`, { repository: 'main' });
      assert.equal(refused.state, 'failed');
      assert.equal(refused.error.code, 'ZEN_CONFLICT', JSON.stringify(refused.error));
      assert.match(virsh('domjobinfo', 'lvb'), /Backup/, 'its job runs on');
    } finally {
      virsh('domjobabort', 'lvb');
    }
  });

  test('a stopped domain: only what changed since the last checkpoint is read (its bitmap in the image); next, in full', async () => {
    await succeeded('POST', `/vms/${vmId}/stop`);
    const changed = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(changed.scope, 'incremental');
    assert.ok(changed.readBytes < 16 * MiB, `read ${changed.readBytes} bytes`);
    // It made no checkpoint (libvirt makes none of an inactive domain): the next reads in full.
    const full = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(full.scope, 'full');
    assert.equal(virsh('checkpoint-list', 'lvb', '--name').trim(), '', 'none left');
  });

  test("and back: a backup of the QEMU host's copy restored onto the libvirt host, as a volume of its pool, boots there as it was; deleted, its disk goes; a restore test there leaves nothing; over the original there keeps the VM and runs it on the disk as it was", async () => {
    // The copy the incremental restore made on the QEMU host, backed up there and brought home.
    const copy = (await s.request('GET', '/vms/lvb-incremental', { token })).body;
    const [dir] = readdirSync(qemuRoot).filter((d) => d.startsWith('lvb-incremental-'));
    const copyHash = guestBytesHash(join(qemuRoot, dir!, 'disk0.qcow2'));
    const there = await succeeded('POST', `/vms/${copy.id}/backups`, { repository: 'main' });
    const home = await succeeded('POST', `/backups/${there.backupId}/restore`, {
      host: 'lv-a',
      name: 'lvb-home',
    });
    const restored = (await s.request('GET', `/vms/${home.vmId}`, { token })).body;
    assert.equal(restored.computed['location.hostName'], 'lv-a');
    const [file] = readdirSync(poolDir).filter((f) => f.startsWith('lvb-home-'));
    assert.ok(file?.endsWith('-disk0.qcow2'), `a file of the pool: ${file}`);
    assert.equal(guestBytesHash(join(poolDir, file!)), copyHash, 'the disk as it was backed up');
    assert.match(virsh('vol-list', 'images'), new RegExp(file!), 'a volume of the pool');
    await succeeded('POST', `/vms/${home.vmId}/start`);
    const ticks = await consoleTicks(s, token, home.vmId, 2);
    assert.equal(ticks.length, 2, 'it boots on the libvirt host');
    await succeeded('POST', `/vms/${home.vmId}/stop`);
    await succeeded('DELETE', `/vms/${home.vmId}`);
    assert.deepEqual(
      readdirSync(poolDir).filter((f) => f.startsWith('lvb-home-')),
      [],
      'its disk went with it',
    );

    // A restore test on the libvirt host: booted with no network, then nothing of it left there.
    const poolBefore = readdirSync(poolDir).sort();
    const passed = await succeeded('POST', `/backups/${there.backupId}/test`, {
      host: 'lv-a',
      marker: GUEST_READY_LINE,
      timeoutSeconds: 120,
    });
    assert.equal(passed.booted, true);
    assert.deepEqual(readdirSync(poolDir).sort(), poolBefore);
    assert.doesNotMatch(virsh('list', '--all', '--name'), /lvb-incremental-test-|lvb-home/);

    const over = await s.request('POST', `/backups/${there.backupId}/restore`, {
      token,
      body: { replace: 'lvb' },
    });
    assert.equal(over.status, 400, JSON.stringify(over.body));
    // Over the original, on the libvirt host: the same domain (UUID, inventory id) defined again on
    // the backup's disk, a new volume of the pool; the disk it had goes.
    const [newest] = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    const original = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    const pointHash = guestBytesHash(disk());
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 9 0 1M', disk()]);
    const back = await succeeded('POST', `/backups/${newest.id}/restore`, { replace: 'lvb' });
    assert.equal(back.vmId, vmId, 'the same VM in the inventory');
    const now = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(now.facts['vm.uuid'], original.facts['vm.uuid']);
    assert.equal(now.computed['location.hostName'], 'lv-a');
    const [newFile] = readdirSync(poolDir).filter((f) => f.startsWith('lvb-restored-'));
    assert.equal(guestBytesHash(join(poolDir, newFile!)), pointHash, 'the disk as at the backup');
    assert.equal(existsSync(disk()), false, 'the disk it had is gone');
    assert.match(virsh('domblklist', 'lvb'), new RegExp(newFile!));
    await succeeded('POST', `/vms/${vmId}/start`);
    assert.equal((await consoleTicks(s, token, vmId, 2)).length, 2, 'it boots');
    const running = await s.request('POST', `/backups/${newest.id}/restore`, {
      token,
      body: { replace: 'lvb' },
    });
    assert.deepEqual([running.status, running.body.error?.code], [409, 'ZEN_INVALID_STATE']);
    await succeeded('POST', `/vms/${vmId}/stop`);
  });
});
