import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { DiscoveredVm } from '../../../src/hypervisors/driver.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { GuestConsole } from '../../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';

const context = { signal: new AbortController().signal, progress: () => undefined };

/** The snapshot tags qemu-img finds in an image. */
const tagsIn = (file: string): string[] =>
  (
    JSON.parse(
      execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' }),
    ).snapshots ?? []
  ).map((s: { name: string }) => s.name);

/** Fills the first 64 KiB of a disk with one byte, as a guest writing to it would. */
const writePattern = (file: string, byte: number) =>
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${byte} 0 64k`, file]);
const holdsPattern = (file: string, byte: number) => {
  try {
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `read -P ${byte} 0 64k`, file], {
      encoding: 'utf8',
    });
    return true;
  } catch {
    return false;
  }
};

describe('QEMU snapshots against real QEMU (TCG)', () => {
  const base = mkdtempSync(join(tmpdir(), 'zenith-qemu-snapshots-'));
  const stateDir = join(base, 'state');
  const root = join(base, 'images');
  let image: { kernel: string; initrd: string };
  let driver: QemuDriver;
  const drivers: QemuDriver[] = [];
  const newDriver = async () => {
    const next = new QemuDriver({
      stateDir,
      storageRoots: [root, dirname(image.kernel)],
      accelerator: 'tcg',
      kvmUsable: false,
      clock: systemClock,
      logger: silentLogger,
    });
    drivers.push(next);
    await next.connect();
    return next;
  };
  const vmOf = async (id: string) =>
    (await driver.discover()).objects.find((o) => o.externalId === id) as DiscoveredVm;
  const createVm = (name: string, options: Record<string, unknown> = {}, diskBytes = 64 << 20) =>
    driver.createVm(
      {
        name,
        cpus: 1,
        memoryBytes: 128 << 20,
        diskBytes,
        hostExternalId: 'x',
        options: {
          kernel: image.kernel,
          initrd: image.initrd,
          cmdline: GUEST_KERNEL_APPEND,
          ...options,
        },
      },
      context,
    );
  const coded = (code: string) => (error: unknown) => isZenithError(error) && error.code === code;
  let vmId = '';
  let disk = '';

  before(async () => {
    image = await ensureGuestImage();
    driver = await newDriver();
    const created = await createVm('snappy');
    vmId = created.externalId;
    disk = join(root, 'snappy', 'disk0.qcow2');
  });
  after(async () => {
    for (const each of drivers) {
      for (const vm of (await each.discover().catch(() => ({ objects: [] }))).objects)
        if (vm.kind === 'vm' && (vm as DiscoveredVm).powerState !== 'stopped')
          await each.stopVm(vm.externalId, context).catch(() => undefined);
      await each.close();
    }
    rmSync(base, { recursive: true, force: true });
  });

  test('a running VM is snapshotted without stopping; reverting takes the guest back to that moment', async () => {
    const started = await driver.startVm(vmId, context);
    const console = await GuestConsole.unix(driver.serialSocket(vmId));
    try {
      const beforeSnapshot = await console.waitForTick((t) => t >= 3);
      const { snapshot, vm } = await driver.createSnapshot(vmId, 'warm', context);
      assert.deepEqual([snapshot.name, snapshot.powerState], ['warm', 'running']);
      assert.equal(vm.powerState, 'running', 'the VM runs on after the snapshot');
      const mark = console.ticks.length;
      const afterSnapshot = await console.waitForTick(() => true, mark);
      // Two seconds of guest time later, still counting up from where it was.
      const beforeRevert = await console.waitForTick((t) => t >= afterSnapshot + 20, mark);

      const reverted = await driver.revertSnapshot(vmId, snapshot.id, context);
      assert.equal(reverted.powerState, 'running');
      assert.equal(reverted.facts['qemu.pid'], started.facts['qemu.pid'], 'the same QEMU');
      const firstAfter = await console.waitForTick(
        (t) => t < beforeRevert,
        console.ticks.indexOf(beforeRevert) + 1,
      );
      assert.ok(
        firstAfter >= beforeSnapshot && firstAfter <= afterSnapshot + 2,
        `the guest counts on from the snapshot (ticks ${beforeSnapshot}–${afterSnapshot}), not from ${beforeRevert}: got ${firstAfter}`,
      );
      await console.waitForTick((t) => t > firstAfter, console.ticks.indexOf(firstAfter) + 1);
      assert.equal(console.bootedSince(mark), false, 'the guest was not booted again');
    } finally {
      console.close();
    }
  });

  test('the list survives a restart of the driver; a deleted snapshot leaves the list and the disk', async () => {
    await driver.close();
    driver = await newDriver();
    const listed = await driver.listSnapshots(vmId);
    assert.deepEqual(
      listed.map((s) => [s.name, s.powerState]),
      [['warm', 'running']],
    );
    assert.equal((await vmOf(vmId)).facts['snapshot.count'], 1);
    const { snapshot: second } = await driver.createSnapshot(vmId, 'second', context);
    assert.deepEqual(tagsIn(disk).sort(), [listed[0]!.id, second.id].sort());

    const after = await driver.deleteSnapshot(vmId, 'warm', context);
    assert.equal(after.powerState, 'running');
    assert.deepEqual(
      (await driver.listSnapshots(vmId)).map((s) => s.name),
      ['second'],
    );
    assert.deepEqual(tagsIn(disk), [second.id], 'the disk no longer holds it');
    assert.deepEqual(
      (await driver.facets.migration.exportVm(vmId)).payload.record.snapshots?.map((s) => s.name),
      ['second'],
      'the list travels with the VM when it migrates to another host',
    );
  });

  test('a stopped VM gets a disk-only snapshot; reverting to it restores the disk and leaves the VM stopped', async () => {
    await driver.stopVm(vmId, context);
    writePattern(disk, 0xaa);
    const { snapshot, vm } = await driver.createSnapshot(vmId, 'cold', context);
    assert.deepEqual([snapshot.powerState, vm.powerState], ['stopped', 'stopped']);
    writePattern(disk, 0xbb);
    assert.equal((await driver.revertSnapshot(vmId, 'cold', context)).powerState, 'stopped');
    assert.ok(holdsPattern(disk, 0xaa), 'the disk is back as it was at the snapshot');

    // Reverting a running VM to a snapshot taken while it was stopped powers it off.
    await driver.startVm(vmId, context);
    const reverted = await driver.revertSnapshot(vmId, snapshot.id, context);
    assert.equal(reverted.powerState, 'stopped');
    assert.equal(reverted.facts['qemu.pid'], null);
  });

  test('a stopped VM reverted to a snapshot of its running guest runs again from that moment, not from boot', async () => {
    assert.equal((await vmOf(vmId)).powerState, 'stopped');
    const reverted = await driver.revertSnapshot(vmId, 'second', context);
    assert.equal(reverted.powerState, 'running');
    const console = await GuestConsole.unix(driver.serialSocket(vmId));
    try {
      assert.ok((await console.waitForTick()) > 0, 'the counter goes on, it does not restart');
      assert.equal(console.bootedSince(0), false);
    } finally {
      console.close();
    }
    await driver.stopVm(vmId, context);
  });

  test('bad requests get coded errors and change nothing', async () => {
    const before = (await driver.listSnapshots(vmId)).map((s) => s.id);
    const tags = tagsIn(disk);
    await assert.rejects(
      driver.createSnapshot(vmId, 'bad/name', context),
      coded('ZEN_BAD_REQUEST'),
    );
    await assert.rejects(driver.createSnapshot(vmId, '', context), coded('ZEN_BAD_REQUEST'));
    await assert.rejects(driver.createSnapshot(vmId, 'second', context), coded('ZEN_CONFLICT'));
    await assert.rejects(driver.revertSnapshot(vmId, 'no-such', context), coded('ZEN_NOT_FOUND'));
    await assert.rejects(driver.deleteSnapshot(vmId, 'no-such', context), coded('ZEN_NOT_FOUND'));
    await assert.rejects(driver.listSnapshots('q-no-such-vm'), coded('ZEN_NOT_FOUND'));
    assert.deepEqual(
      (await driver.listSnapshots(vmId)).map((s) => s.id),
      before,
    );
    assert.deepEqual(tagsIn(disk), tags);

    const diskless = await createVm('diskless', {}, 0);
    await assert.rejects(
      driver.createSnapshot(diskless.externalId, 'x', context),
      (e) => coded('ZEN_UNSUPPORTED')(e) && /no disk/.test((e as Error).message),
    );
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(root, 'plain.img'), '16M']);
    const raw = await createVm('raw-disk', { disks: [{ file: 'plain.img' }] }, 0);
    await assert.rejects(
      driver.createSnapshot(raw.externalId, 'x', context),
      (e) => coded('ZEN_UNSUPPORTED')(e) && /is raw, not qcow2/.test((e as Error).message),
    );
    assert.deepEqual(await driver.listSnapshots(raw.externalId), []);
  });
});
