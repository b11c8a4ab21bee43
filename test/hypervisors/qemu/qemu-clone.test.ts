import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { ActionProgress, DiscoveredVm } from '../../../src/hypervisors/driver.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { GuestConsole } from '../../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';

const context = { signal: new AbortController().signal, progress: () => undefined };

const info = (file: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' }));

describe('QEMU clones against real QEMU (TCG)', () => {
  const base = mkdtempSync(join(tmpdir(), 'zenith-qemu-clone-'));
  const root = join(base, 'images');
  let image: { kernel: string; initrd: string };
  let driver: QemuDriver;
  let source: DiscoveredVm;
  const sourceDisk = () => join(root, 'origin', 'disk0.qcow2');
  const vms = async () =>
    (await driver.discover()).objects.filter((o) => o.kind === 'vm') as DiscoveredVm[];
  const coded = (code: string) => (error: unknown) => isZenithError(error) && error.code === code;

  /** Starts a VM, waits for its guest to count, and stops it again. */
  const bootsAndTicks = async (id: string) => {
    await driver.startVm(id, context);
    const console = await GuestConsole.unix(driver.serialSocket(id));
    try {
      await console.waitForTick((t) => t >= 2);
    } finally {
      console.close();
      await driver.stopVm(id, context);
    }
  };

  before(async () => {
    image = await ensureGuestImage();
    driver = new QemuDriver({
      stateDir: join(base, 'state'),
      storageRoots: [root, dirname(image.kernel)],
      accelerator: 'tcg',
      kvmUsable: false,
      clock: systemClock,
      logger: silentLogger,
    });
    await driver.connect();
    source = await driver.createVm(
      {
        name: 'origin',
        cpus: 1,
        memoryBytes: 128 << 20,
        diskBytes: 64 << 20,
        hostExternalId: 'x',
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
      context,
    );
    // Something on the disk, so a copy can be told from a blank one.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 2M', sourceDisk()]);
  });
  after(async () => {
    for (const vm of await vms().catch(() => []))
      if (vm.powerState !== 'stopped')
        await driver.stopVm(vm.externalId, context).catch(() => undefined);
    await driver.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('a full clone is a stopped VM with its own copy of the disks and a new identity; it boots', async () => {
    const progress: ActionProgress[] = [];
    const clone = await driver.cloneVm(
      source.externalId,
      { name: 'copy-full' },
      { ...context, progress: (p) => progress.push(p) },
    );
    assert.equal(clone.name, 'copy-full');
    assert.equal(clone.powerState, 'stopped');
    assert.notEqual(clone.externalId, source.externalId);
    assert.notEqual(clone.facts['vm.uuid'], source.facts['vm.uuid']);
    assert.match(String(clone.facts['vm.uuid']), /^[0-9a-f-]{36}$/);
    for (const fact of ['cpu.count', 'memory.bytes', 'boot.kind', 'disk.totalBytes'])
      assert.equal(clone.facts[fact], source.facts[fact], fact);

    const copy = join(root, 'copy-full', 'disk0.qcow2');
    assert.equal(info(copy)['backing-filename'], undefined, 'a self-contained image');
    assert.match(
      execFileSync('qemu-img', ['compare', '-U', sourceDisk(), copy], { encoding: 'utf8' }),
      /Images are identical/,
    );
    const percents = progress.map((p) => p.percent);
    assert.ok(percents.length >= 2, JSON.stringify(progress));
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => a - b),
      'progress only goes up',
    );
    assert.ok(percents.at(-1)! >= 95);

    await bootsAndTicks(clone.externalId);
    // The copy is independent: the source can still be started and deleted later.
    assert.deepEqual(
      (await vms()).find((v) => v.externalId === source.externalId)?.facts['clone.linkedClones'],
      [],
    );
  });

  test('a linked clone is an overlay on the source disk; the source is then kept from changing', async () => {
    const clone = await driver.cloneVm(
      source.externalId,
      { name: 'copy-linked', linked: true },
      context,
    );
    const overlay = join(root, 'copy-linked', 'disk0.qcow2');
    assert.equal(info(overlay)['backing-filename'], sourceDisk());
    assert.ok(info(overlay)['actual-size'] < 1 << 20, 'nothing was copied');
    assert.notEqual(clone.facts['vm.uuid'], source.facts['vm.uuid']);
    await bootsAndTicks(clone.externalId);

    const origin = (await vms()).find((v) => v.externalId === source.externalId)!;
    assert.deepEqual(origin.facts['clone.linkedClones'], ['copy-linked']);
    await assert.rejects(driver.deleteVm(source.externalId, context), coded('ZEN_CONFLICT'));
    await assert.rejects(driver.startVm(source.externalId, context), coded('ZEN_CONFLICT'));
    await assert.rejects(
      driver.createSnapshot(source.externalId, 'x', context),
      coded('ZEN_CONFLICT'),
    );
    assert.ok(existsSync(sourceDisk()), 'the source disk is still there');

    // Once the clone is gone, the source is free again.
    await driver.deleteVm(clone.externalId, context);
    assert.equal(existsSync(overlay), false);
    const freed = (await vms()).find((v) => v.externalId === source.externalId)!;
    assert.deepEqual(freed.facts['clone.linkedClones'], []);
  });

  test('a taken name, a bad name, a running source or a cancelled copy are refused and leave nothing behind', async () => {
    const before = { vms: (await vms()).length, files: readdirSync(root).sort() };
    await assert.rejects(
      driver.cloneVm(source.externalId, { name: 'copy-full' }, context),
      coded('ZEN_CONFLICT'),
    );
    await assert.rejects(
      driver.cloneVm(source.externalId, { name: '../escape' }, context),
      coded('ZEN_BAD_REQUEST'),
    );
    await assert.rejects(
      driver.cloneVm('q-no-such-vm', { name: 'copy-3' }, context),
      coded('ZEN_NOT_FOUND'),
    );
    const cancelled = new AbortController();
    cancelled.abort();
    await assert.rejects(
      driver.cloneVm(
        source.externalId,
        { name: 'copy-cancelled' },
        { signal: cancelled.signal, progress: () => undefined },
      ),
      coded('ZEN_TASK_CANCELLED'),
    );
    await driver.startVm(source.externalId, context);
    await assert.rejects(
      driver.cloneVm(source.externalId, { name: 'copy-running' }, context),
      coded('ZEN_INVALID_STATE'),
    );
    await driver.stopVm(source.externalId, context);
    assert.deepEqual(
      { vms: (await vms()).length, files: readdirSync(root).sort() },
      before,
      'no VM and no file was left',
    );
  });
});
