import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { processAlive } from '../../../src/core/process.js';
import type { DiscoveredVm, VmMetrics } from '../../../src/hypervisors/driver.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import {
  bridgeOf,
  createTestBridge,
  interfaceExists,
  linkOf,
  type TestBridge,
} from '../../../src/testing/bridge.js';
import { ensureGuestImage, guestAppend } from '../../../src/testing/guest-image.js';
import { until } from '../../../src/testing/wait.js';

const run = promisify(execFile);
const context = { signal: new AbortController().signal, progress: () => undefined };

describe('bridged NICs: taps Zenith makes on a real bridge, with real QEMU (TCG)', () => {
  const base = mkdtempSync(join(tmpdir(), 'zenith-bridged-'));
  const images = join(base, 'images');
  let image: { kernel: string; initrd: string };
  let bridge: TestBridge;
  const drivers: QemuDriver[] = [];
  /** A driver on its own state directory (`name`): two names are two hosts on one machine. */
  const newDriver = async (name = 'a') => {
    const driver = new QemuDriver({
      stateDir: join(base, `state-${name}`),
      storageRoots: [images, dirname(image.kernel)],
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
  const vmOf = async (driver: QemuDriver, id: string) =>
    (await driver.discover()).objects.find((o) => o.externalId === id) as DiscoveredVm;
  const tapsOf = (vm: DiscoveredVm) => vm.facts['network.taps'] as string[];
  /** A stopped VM booting the test guest with its NICs up (`zenith.net=up`). */
  const createVm = (driver: QemuDriver, name: string, nics: unknown[]) =>
    driver.createVm(
      {
        name,
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        hostExternalId: 'x',
        options: {
          kernel: image.kernel,
          initrd: image.initrd,
          cmdline: guestAppend({ net: true }),
          nics,
          vnc: false,
        },
      },
      context,
    );

  before(async () => {
    image = await ensureGuestImage();
    await newDriver();
    // Made after the driver connected: the bridges a spec may name are read when it is checked.
    bridge = await createTestBridge();
  });
  after(async () => {
    for (const driver of drivers) {
      const vms = (await driver.discover().catch(() => ({ objects: [] }))).objects;
      for (const vm of vms.filter((o) => o.kind === 'vm') as DiscoveredVm[])
        if (vm.powerState !== 'stopped')
          await driver.stopVm(vm.externalId, context).catch(() => undefined);
      await driver.close();
    }
    await bridge?.remove();
    rmSync(base, { recursive: true, force: true });
  });

  test("a VM with a bridged NIC runs on a tap of its own, a port of the bridge, and the guest's traffic is counted", async () => {
    const driver = drivers[0]!;
    // A user-mode NIC beside the bridged one: only the bridged one's traffic can be counted.
    const created = await createVm(driver, 'bridged', [
      { mode: 'user' },
      { mode: 'bridge', bridge: bridge.name },
    ]);
    const [tap] = tapsOf(created);
    assert.ok(tap && tapsOf(created).length === 1, JSON.stringify(created.facts));
    assert.equal(interfaceExists(tap), false, 'no tap while the VM is stopped');

    await driver.startVm(created.externalId, context);
    assert.equal(bridgeOf(tap), bridge.name, 'the tap is a port of the bridge');
    assert.deepEqual(bridge.ports(), [tap]);
    const guestMac = (created.facts['network.macs'] as string[])[1]!;
    assert.deepEqual(linkOf(tap), { mac: `fe${guestMac.slice(2)}`, operstate: 'up' });

    const metrics = async () => (await driver.vmMetrics(created.externalId)) as VmMetrics;
    const first = await metrics();
    assert.equal(typeof first.netRxBytes, 'number', JSON.stringify(first));
    assert.equal(typeof first.netTxBytes, 'number', JSON.stringify(first));
    // The guest's NIC is up once it has said something (IPv6 announces a new interface by itself).
    const up = await until('the guest to send on its bridged NIC', async () => {
      const sample = await metrics();
      return sample.netTxBytes! > 0 ? sample : undefined;
    });

    // 20 datagrams of 1000 bytes from the host into the bridge: each reaches the guest as one frame.
    await bridge.sendToAllNodes(20, 1000);
    const received = await until(
      () => `the guest to receive 20 000 bytes more than ${up.netRxBytes}`,
      async () => {
        const sample = await metrics();
        return sample.netRxBytes! >= up.netRxBytes! + 20 * 1000 ? sample : undefined;
      },
    );
    assert.ok(received.netTxBytes! >= up.netTxBytes!, 'counters only grow');

    await driver.stopVm(created.externalId, context, { force: true });
    assert.equal(interfaceExists(tap), false, 'the tap is gone once the VM is stopped');
    assert.deepEqual(bridge.ports(), []);
    await driver.deleteVm(created.externalId, context);
  });

  test('a tap left behind by a crash is made anew; a QEMU that dies takes its tap with it, watched or not', async () => {
    let driver = drivers[0]!;
    const created = await createVm(driver, 'crashy', [{ mode: 'bridge', bridge: bridge.name }]);
    const id = created.externalId;
    const [tap] = tapsOf(created) as [string];

    // A stale tap of the same name, not on any bridge (as a crash in the middle of a start leaves it).
    await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await driver.startVm(id, context);
    assert.equal(bridgeOf(tap), bridge.name);

    // Killed while the driver watches: the tap goes with it.
    process.kill((await vmOf(driver, id)).facts['qemu.pid'] as number, 'SIGKILL');
    await until('the tap of the killed QEMU to be removed', async () =>
      interfaceExists(tap) ? undefined : true,
    );
    assert.equal((await vmOf(driver, id)).powerState, 'stopped');

    // Killed while no driver watches: the next driver removes it as it re-attaches.
    await driver.startVm(id, context);
    const pid = (await vmOf(driver, id)).facts['qemu.pid'] as number;
    await driver.close();
    process.kill(pid, 'SIGKILL');
    await until('QEMU to be gone', async () => (processAlive(pid) ? undefined : true));
    assert.equal(interfaceExists(tap), true, 'nobody removed the tap while no driver ran');
    driver = await newDriver();
    assert.equal(interfaceExists(tap), false, 'the restarted driver removed it');
    assert.equal((await vmOf(driver, id)).powerState, 'stopped');
    await driver.deleteVm(id, context);
  });

  test("a live migration between two hosts on one machine: the destination makes its own tap, the source's goes", async () => {
    const source = drivers.at(-1)!;
    const destination = await newDriver('b');
    const created = await createVm(source, 'travels', [{ mode: 'bridge', bridge: bridge.name }]);
    const id = created.externalId;
    const [sourceTap] = tapsOf(created) as [string];
    await source.startVm(id, context);

    const incoming = await destination.facets.migration.prepareIncoming(
      await source.facets.migration.exportVm(id),
      {},
    );
    const ports = bridge.ports();
    assert.equal(ports.length, 2, `both ends have a tap on the bridge: ${ports.join(', ')}`);
    await source.facets.migration.send(id, incoming, {}, context);
    const arrived = await destination.facets.migration.finishIncoming(id);
    await source.facets.migration.finishOutgoing(id, true);

    const [tap] = tapsOf(arrived) as [string];
    assert.notEqual(tap, sourceTap, 'each host names its own tap');
    assert.equal(arrived.powerState, 'running');
    assert.deepEqual(bridge.ports(), [tap], "the source's tap is gone, the destination's remains");
    assert.equal(typeof (await destination.vmMetrics(id))?.netRxBytes, 'number');
    assert.deepEqual(
      arrived.facts['network.macs'],
      created.facts['network.macs'],
      'the guest keeps its MAC address',
    );
    await destination.stopVm(id, context, { force: true });
    assert.equal(interfaceExists(tap), false);
  });

  test('a bridge that is gone by the time the VM starts: the start is refused and leaves no tap', async () => {
    const driver = drivers[0]!;
    const shortLived = await createTestBridge();
    const created = await createVm(driver, 'orphan', [{ mode: 'bridge', bridge: shortLived.name }]);
    const [tap] = tapsOf(created) as [string];
    await shortLived.remove();
    await assert.rejects(
      driver.startVm(created.externalId, context),
      (e) => isZenithError(e) && e.code === 'ZEN_INVALID_STATE' && /no bridge/.test(e.message),
    );
    assert.equal(interfaceExists(tap), false);
    assert.equal((await vmOf(driver, created.externalId)).powerState, 'stopped');
    // And a spec naming a bridge that does not exist is refused before anything is created.
    await assert.rejects(
      createVm(driver, 'nowhere', [{ mode: 'bridge', bridge: shortLived.name }]),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_REQUEST',
    );
    const names = (await driver.discover()).objects.map((o) => o.name);
    assert.equal(names.includes('nowhere'), false, 'nothing was created');
  });
});
