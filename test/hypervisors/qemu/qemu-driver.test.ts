import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { DiscoveredVm, InventoryDelta } from '../../../src/hypervisors/driver.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
  guestAppend,
} from '../../../src/testing/guest-image.js';

const context = { signal: new AbortController().signal, progress: () => undefined };

/** Reads a VM's serial console socket until `pattern` shows up. */
function readSerial(socketPath: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no ${pattern} on the serial console within ${timeoutMs} ms; got: ${text.slice(-500)}`,
        ),
      );
    }, timeoutMs);
    socket.on('data', (chunk) => {
      text += chunk.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

describe('QEMU driver against real QEMU (TCG)', () => {
  const base = mkdtempSync(join(tmpdir(), 'zenith-qemu-driver-'));
  const stateDir = join(base, 'state');
  const root = join(base, 'images');
  let kernelDir: string;
  let image: { kernel: string; initrd: string };
  const drivers: QemuDriver[] = [];
  const newDriver = async () => {
    const driver = new QemuDriver({
      stateDir,
      storageRoots: [root, kernelDir],
      accelerator: 'tcg',
      kvmUsable: false,
      clock: systemClock,
      logger: silentLogger,
      shutdownTimeoutMs: 2000,
    });
    drivers.push(driver);
    await driver.connect();
    return driver;
  };
  before(async () => {
    image = await ensureGuestImage();
    kernelDir = dirname(image.kernel);
  });
  after(async () => {
    for (const driver of drivers) {
      for (const vm of (await driver.discover().catch(() => ({ objects: [] }))).objects.filter(
        (o) => o.kind === 'vm',
      ) as DiscoveredVm[]) {
        if (vm.powerState !== 'stopped')
          await driver.stopVm(vm.externalId, context).catch(() => undefined);
      }
      await driver.close();
    }
    rmSync(base, { recursive: true, force: true });
  });

  let vmId = '';

  test('the local host is discovered with its facts', async () => {
    const driver = await newDriver();
    const host = (await driver.discover()).objects.find((o) => o.kind === 'host')!;
    assert.equal(host.facts['hypervisor.type'], 'qemu');
    assert.match(String(host.facts['qemu.version']), /^\d+\.\d+/);
    assert.ok((host.facts['cpu.cores'] as number) >= 1);
    assert.equal(host.facts['accelerator.kvmUsable'], false);
  });

  test('create and start a VM: the guest boots and its state changes arrive through watch()', async (t) => {
    const driver = drivers[0]!;
    const watcher = new AbortController();
    const deltas: InventoryDelta[] = [];
    void (async () => {
      for await (const delta of driver.watch(watcher.signal)) deltas.push(delta);
    })();
    const created = await driver.createVm(
      {
        name: 'guest-1',
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 64 * 1048576,
        hostExternalId: 'x',
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
      context,
    );
    vmId = created.externalId;
    assert.equal(created.powerState, 'stopped');
    const started = await driver.startVm(vmId, context);
    assert.equal(started.powerState, 'running');
    assert.equal(typeof started.facts['qemu.pid'], 'number');
    await readSerial(
      driver.serialSocket(vmId),
      new RegExp(`${GUEST_READY_LINE}[\\s\\S]*tick \\d+`),
    );
    const suspendedAt = Date.now();
    assert.equal((await driver.suspendVm(vmId)).powerState, 'suspended');
    for (
      let i = 0;
      i < 100 &&
      !deltas.some(
        (d) => d.type === 'upsert' && (d.object as DiscoveredVm).powerState === 'suspended',
      );
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    const seen = deltas.find(
      (d) => d.type === 'upsert' && (d.object as DiscoveredVm).powerState === 'suspended',
    );
    assert.ok(seen, 'the suspension reached watch()');
    t.diagnostic(
      `the suspension reached watch() ${Date.now() - suspendedAt} ms after it was asked for`,
    );
    assert.equal((await driver.resumeVm(vmId)).powerState, 'running');
    watcher.abort();
  });

  test('the VM outlives the driver: a new driver instance re-attaches to the running QEMU', async () => {
    const first = drivers[0]!;
    const pid = (
      (await first.discover()).objects.find((o) => o.externalId === vmId) as DiscoveredVm
    ).facts['qemu.pid'];
    await first.close();
    const second = await newDriver();
    const again = (await second.discover()).objects.find(
      (o) => o.externalId === vmId,
    ) as DiscoveredVm;
    assert.deepEqual([again.powerState, again.facts['qemu.pid']], ['running', pid]);
    await readSerial(second.serialSocket(vmId), /tick \d+/);
  });

  test('a VM whose QEMU died while no driver watched is reported stopped, with the reason', async () => {
    const driver = drivers.at(-1)!;
    const pid = (
      (await driver.discover()).objects.find((o) => o.externalId === vmId) as DiscoveredVm
    ).facts['qemu.pid'] as number;
    await driver.close();
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const next = await newDriver();
    const vm = (await next.discover()).objects.find((o) => o.externalId === vmId) as DiscoveredVm;
    assert.equal(vm.powerState, 'stopped');
    assert.match(String(vm.facts['power.reason']), /exited/);
  });

  test("a guest that crashes and reboots itself is counted, with the time and QEMU's reason", async () => {
    const driver = drivers.at(-1)!;
    const created = await driver.createVm(
      {
        name: 'crasher',
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        hostExternalId: 'x',
        options: {
          kernel: image.kernel,
          initrd: image.initrd,
          cmdline: guestAppend({ panicAfterTicks: 3 }),
        },
      },
      context,
    );
    const started = await driver.startVm(created.externalId, context);
    assert.equal(started.facts['guest.resets'], 0);
    assert.equal(started.facts['guest.lastReset'], null);
    // The kernel panics after tick 3 and, with panic=-1, reboots: the guest prints its boot line again.
    await readSerial(
      driver.serialSocket(created.externalId),
      new RegExp(`tick 3[\\s\\S]*${GUEST_READY_LINE}`),
      60_000,
    );
    const vm = (await driver.discover()).objects.find(
      (o) => o.externalId === created.externalId,
    ) as DiscoveredVm;
    assert.ok((vm.facts['guest.resets'] as number) >= 1, JSON.stringify(vm.facts));
    assert.match(String(vm.facts['guest.lastReset']), /^\d{4}-\d\d-\d\dT\S+Z guest-reset$/);
    assert.equal(vm.powerState, 'running', 'the same QEMU runs on');
    assert.equal(vm.facts['qemu.pid'], started.facts['qemu.pid']);
    await driver.stopVm(created.externalId, context);
    await driver.deleteVm(created.externalId, context);
  });

  test('stop and delete remove the VM and its disks; impossible specs are refused before anything is created', async () => {
    const driver = drivers.at(-1)!;
    await driver.startVm(vmId, context);
    assert.equal((await driver.stopVm(vmId, context, { force: true })).powerState, 'stopped');
    await driver.deleteVm(vmId, context);
    assert.equal((await driver.discover()).objects.filter((o) => o.kind === 'vm').length, 0);
    const refuse = async (
      options: Record<string, unknown>,
      change: Partial<{ cpus: number; memoryBytes: number; name: string }>,
      code: string,
    ) =>
      assert.rejects(
        driver.createVm(
          {
            name: 'bad',
            cpus: 1,
            memoryBytes: 128 * 1048576,
            diskBytes: 0,
            hostExternalId: 'x',
            ...change,
            options: { kernel: image.kernel, ...options },
          },
          context,
        ),
        (e) => isZenithError(e) && e.code === code,
      );
    await refuse({}, { cpus: 0 }, 'ZEN_BAD_REQUEST');
    await refuse({}, { memoryBytes: 1024 ** 5 }, 'ZEN_NO_CAPACITY');
    await refuse({ kernel: '/etc/passwd' }, {}, 'ZEN_BAD_REQUEST');
    await refuse({ baseImage: '../../etc/shadow' }, {}, 'ZEN_BAD_REQUEST');
    await refuse({ nics: [{ mode: 'bridge', bridge: 'no-such-bridge' }] }, {}, 'ZEN_BAD_REQUEST');
    assert.equal(
      (await driver.discover()).objects.filter((o) => o.kind === 'vm').length,
      0,
      'nothing was created',
    );
  });

  test('a start that fails (its kernel file is gone) leaves the VM stopped with no process: metrics answer null, a new start is possible', async () => {
    const driver = drivers.at(-1)!;
    // A kernel of its own inside a storage root, removed before the start: QEMU makes its QMP
    // socket, then exits on the missing file.
    mkdirSync(root, { recursive: true });
    const kernel = join(root, 'vanishing-kernel');
    copyFileSync(image.kernel, kernel);
    const created = await driver.createVm(
      {
        name: 'no-kernel',
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        hostExternalId: 'x',
        options: { kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
      context,
    );
    rmSync(kernel);
    await assert.rejects(
      driver.startVm(created.externalId, context),
      (e) => isZenithError(e) && e.code === 'ZEN_DRIVER_ERROR' && /kernel/.test(e.message),
    );
    const vm = (await driver.discover()).objects.find(
      (o) => o.externalId === created.externalId,
    ) as DiscoveredVm;
    assert.deepEqual([vm.powerState, vm.facts['qemu.pid']], ['stopped', null]);
    assert.equal(await driver.vmMetrics(created.externalId), null);
    assert.deepEqual(await driver.allMetrics(), {});
    // The kernel back in place: the same VM starts.
    copyFileSync(image.kernel, kernel);
    assert.equal((await driver.startVm(created.externalId, context)).powerState, 'running');
    assert.ok(await driver.vmMetrics(created.externalId), 'a running VM has metrics');
    await driver.stopVm(created.externalId, context);
    await driver.deleteVm(created.externalId, context);
  });
});
