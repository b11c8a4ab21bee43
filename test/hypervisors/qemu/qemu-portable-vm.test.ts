/**
 * The portable-VM facet of the QEMU driver against real QEMU (TCG): two hosts
 * on this machine sharing a storage root, a VM described on one and run on
 * the other from its description with the disk it has — as a restart after a
 * host failure does.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { processAlive } from '../../../src/core/process.js';
import { facetOf, type DiscoveredVm, type PortableVm } from '../../../src/hypervisors/driver.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { GuestConsole } from '../../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../../src/testing/guest-image.js';
import { until } from '../../../src/testing/wait.js';

const context = { signal: new AbortController().signal, progress: () => undefined };
const coded = (code: string) => (error: unknown) => isZenithError(error) && error.code === code;

describe('a QEMU VM described on one host and run on another (real QEMU, TCG)', () => {
  const base = mkdtempSync(join(tmpdir(), 'zenith-portable-'));
  const root = join(base, 'shared');
  let image: { kernel: string; initrd: string };
  const drivers: QemuDriver[] = [];
  let hostA: QemuDriver;
  let hostB: QemuDriver;
  let original: DiscoveredVm;
  let description: PortableVm;
  const disk = () => join(root, 'wanderer', 'disk0.qcow2');
  const vmsOf = async (driver: QemuDriver) =>
    (await driver.discover()).objects.filter((o) => o.kind === 'vm') as DiscoveredVm[];
  const newHost = async (name: string) => {
    const driver = new QemuDriver({
      stateDir: join(base, name),
      storageRoots: [root, dirname(image.kernel)],
      accelerator: 'tcg',
      kvmUsable: false,
      hostName: name,
      clock: systemClock,
      logger: silentLogger,
    });
    await driver.connect();
    drivers.push(driver);
    return driver;
  };
  const ticksOn = async (driver: QemuDriver, id: string) => {
    const console = await GuestConsole.unix(driver.serialSocket(id));
    try {
      await console.waitForTick((t) => t >= 2);
    } finally {
      console.close();
    }
  };

  before(async () => {
    image = await ensureGuestImage();
    hostA = await newHost('host-a');
    hostB = await newHost('host-b');
    original = await hostA.createVm(
      {
        name: 'wanderer',
        cpus: 1,
        memoryBytes: 128 << 20,
        diskBytes: 64 << 20,
        hostExternalId: 'host-a',
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
      context,
    );
    // Data on the disk, to find again wherever the VM runs.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 2M', disk()]);
    await hostA.startVm(original.externalId, context);
    await ticksOn(hostA, original.externalId);
  });
  after(async () => {
    for (const driver of drivers) {
      for (const vm of await vmsOf(driver).catch(() => []))
        if (vm.powerState !== 'stopped')
          await driver.stopVm(vm.externalId, context).catch(() => undefined);
      await driver.close();
    }
    rmSync(base, { recursive: true, force: true });
  });

  test('the description keeps what makes the guest itself: UUID, MACs, disks by path and format, boot', async () => {
    const facet = facetOf(hostA, 'portableVms');
    assert.ok(facet, 'a QEMU driver declares the portable-VM facet');
    description = await facet.describeVm(original.externalId);
    assert.equal(description.uuid, original.facts['vm.uuid']);
    assert.equal(description.name, 'wanderer');
    assert.deepEqual([description.cpus, description.memoryBytes], [1, 128 << 20]);
    assert.deepEqual([description.firmware, description.machine], ['bios', 'pc']);
    assert.deepEqual(description.disks, [
      {
        location: { path: disk() },
        format: 'qcow2',
        bus: 'virtio',
        capacityBytes: 64 << 20,
        owned: true,
      },
    ]);
    assert.deepEqual(
      description.nics.map((nic) => [nic.mac, nic.model, nic.attachment.kind]),
      [[(original.facts['network.macs'] as string[])[0], 'virtio', 'user']],
    );
    assert.deepEqual(description.boot, {
      kind: 'kernel',
      kernel: { path: image.kernel },
      initrd: { path: image.initrd },
      cmdline: GUEST_KERNEL_APPEND,
    });
  });

  test('while the VM runs on its host the other cannot run it too: QEMU’s image lock refuses, nothing stays', async () => {
    await assert.rejects(
      hostB.facets.portableVms.runVm(description, { start: true }, context),
      (error) => coded('ZEN_DRIVER_ERROR')(error) && /lock/i.test((error as Error).message),
    );
    assert.deepEqual(await vmsOf(hostB), [], 'nothing defined on host-b');
    const [onA] = await vmsOf(hostA);
    assert.equal(onA?.powerState, 'running', 'the VM runs on at host-a');
  });

  test('after its host fails, the other runs it from the description with its disk: same UUID, MACs and data', async () => {
    const pid = (await vmsOf(hostA))[0]!.facts['qemu.pid'] as number;
    process.kill(pid, 'SIGKILL');
    await until('host-a’s QEMU to be gone', async () => (processAlive(pid) ? undefined : true));

    const running = await hostB.facets.portableVms.runVm(description, { start: true }, context);
    assert.equal(running.powerState, 'running');
    assert.equal(running.facts['vm.uuid'], original.facts['vm.uuid']);
    assert.deepEqual(running.facts['network.macs'], original.facts['network.macs']);
    assert.equal(running.facts['disk.totalBytes'], 64 << 20);
    await ticksOn(hostB, running.externalId);
    const read = spawnSync(
      'qemu-io',
      ['-f', 'qcow2', '-r', '-U', '-c', 'read -P 0x5a 1M 2M', disk()],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(read.status, 0, read.stderr);
    assert.doesNotMatch(read.stdout, /verification failed/i, 'the data is the VM’s');
    // Still its own disk on host-b (deleting the VM there removes it), not an attached image.
    const again = await hostB.facets.portableVms.describeVm(running.externalId);
    assert.deepEqual(again.disks, description.disks);
    assert.deepEqual(again.nics, description.nics);
    await hostB.stopVm(running.externalId, context);
  });

  test('a description this host cannot run as written is refused before anything is made', async () => {
    const refuses = async (vm: PortableVm, code: string) =>
      assert.rejects(hostB.facets.portableVms.runVm(vm, { start: false }, context), coded(code));
    const elsewhere = { ...description, name: 'elsewhere', uuid: randomUUID() };
    await refuses({ ...elsewhere, firmware: 'uefi' }, 'ZEN_UNSUPPORTED');
    await refuses({ ...elsewhere, machine: 'q35' }, 'ZEN_UNSUPPORTED');
    await refuses(
      { ...elsewhere, nics: [{ ...description.nics[0]!, model: 'e1000' }] },
      'ZEN_UNSUPPORTED',
    );
    await refuses(
      { ...elsewhere, disks: [{ ...description.disks[0]!, format: 'raw' }] },
      'ZEN_UNSUPPORTED',
    );
    await refuses(
      {
        ...elsewhere,
        disks: [{ ...description.disks[0]!, location: { path: join(root, 'nowhere.qcow2') } }],
      },
      'ZEN_INVALID_STATE',
    );
    // Another VM's disk is never this one's.
    await refuses(elsewhere, 'ZEN_DISK_IN_USE');
    // The same VM twice on one host while it runs there, by name or by UUID.
    const [stale] = await vmsOf(hostB);
    await hostB.startVm(stale!.externalId, context);
    await refuses(description, 'ZEN_CONFLICT');
    await refuses({ ...description, name: 'renamed' }, 'ZEN_CONFLICT');
    await refuses({ ...elsewhere, name: 'wanderer' }, 'ZEN_CONFLICT');
    assert.deepEqual(
      (await vmsOf(hostB)).map((vm) => [vm.name, vm.externalId, vm.powerState]),
      [['wanderer', stale!.externalId, 'running']],
      'nothing else was defined, and it runs on',
    );
    // Stopped, it is a stale copy: run again from the description it replaces that definition
    // (one VM, defined again under the id it had: the same VM to the inventory), and its disk stays.
    await hostB.stopVm(stale!.externalId, context);
    const again = await hostB.facets.portableVms.runVm(description, { start: false }, context);
    const now = await vmsOf(hostB);
    assert.deepEqual(
      now.map((vm) => vm.name),
      ['wanderer'],
    );
    assert.equal(again.externalId, stale!.externalId, 'defined again under its id');
    assert.equal(again.powerState, 'stopped');
    for (const disk of description.disks)
      assert.ok(existsSync(disk.location.path), disk.location.path);
  });
  test('a discard of VMs that moved away, asked again and again while this very VM starts here, keeps it: it runs, and no QEMU of it runs unknown to its host', async () => {
    const run = hostB.facets.portableVms.runVm(description, { start: true }, context);
    let done = false;
    const finished = run.finally(() => (done = true));
    const answers: string[] = [];
    // As the control plane's clean-up of a host back from a failure may ask while a restart runs.
    while (!done) {
      const { discarded, kept } = await hostB.discardMovedAway([description.uuid]);
      answers.push(...discarded.map(() => 'discarded'), ...kept.map((k) => k.reason));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const running = await finished;
    assert.equal(running.powerState, 'running');
    assert.ok(
      answers.some((answer) => /starting|running/.test(answer)),
      `the discard saw it being started: ${answers.join(', ')}`,
    );
    const listed = (await vmsOf(hostB)).filter((vm) => vm.facts['vm.uuid'] === description.uuid);
    assert.deepEqual(
      listed.map((vm) => [vm.externalId, vm.powerState]),
      [[running.externalId, 'running']],
    );
    const qemus = spawnSync('pgrep', ['-f', `qemu-system.*-uuid ${description.uuid}`], {
      encoding: 'utf8',
    })
      .stdout.trim()
      .split('\n')
      .filter(Boolean);
    assert.deepEqual(
      qemus.map(Number),
      [listed[0]!.facts['qemu.pid']],
      'its one QEMU is the one its host knows',
    );
    await hostB.stopVm(running.externalId, context);
  });

  test('a VM migrated live to a host that holds a stopped definition of it from an earlier stay: that one goes, and the host lists the VM once, running', async () => {
    // host-a keeps a stopped definition of the VM (as after a failover away from it).
    const stale = await hostA.facets.portableVms.runVm(description, { start: false }, context);
    const [onB] = (await vmsOf(hostB)).filter((vm) => vm.facts['vm.uuid'] === description.uuid);
    await hostB.startVm(onB!.externalId, context);
    await ticksOn(hostB, onB!.externalId);
    const source = facetOf(hostB, 'migration')!;
    const target = facetOf(hostA, 'migration')!;
    const offer = await source.exportVm(onB!.externalId);
    const incoming = await target.prepareIncoming(offer, {});
    await source.send(offer.migrationId, incoming, {}, context);
    const arrived = await target.finishIncoming(offer.migrationId);
    await source.finishOutgoing(offer.migrationId, true);
    const listed = (await vmsOf(hostA)).filter((vm) => vm.facts['vm.uuid'] === description.uuid);
    assert.deepEqual(
      listed.map((vm) => [vm.externalId, vm.powerState]),
      [[arrived.externalId, 'running']],
      `one definition, the arrived one (the stale one was ${stale.externalId})`,
    );
    await ticksOn(hostA, arrived.externalId);
    await hostA.stopVm(arrived.externalId, context);
  });
  test('a VM started paused runs no guest until resumed: its console is read from the first byte', async () => {
    assert.equal(hostB.facets.portableVms.startsPaused, true);
    const boot = description.boot as Extract<PortableVm['boot'], { kind: 'kernel' }>;
    const held: PortableVm = {
      ...description,
      uuid: randomUUID(),
      name: 'held',
      disks: [],
      nics: [],
      // Not quiet: the kernel's first line ("Linux version …") comes a moment after the start.
      boot: { ...boot, cmdline: GUEST_KERNEL_APPEND.replace(' quiet', '') },
    };
    const started = await hostB.facets.portableVms.runVm(
      held,
      { start: true, paused: true },
      context,
    );
    try {
      assert.equal(started.powerState, 'suspended', 'QEMU runs, its guest is held');
      let output = '';
      const serial = connect(hostB.serialSocket(started.externalId));
      serial.on('data', (chunk: Buffer) => (output += chunk.toString('latin1')));
      await new Promise((resolve) => serial.once('connect', resolve));
      try {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal(output, '', 'nothing printed while held');
        const resumed = await hostB.resumeVm(started.externalId);
        assert.equal(resumed.powerState, 'running');
        await until('the kernel’s first line on the console', async () =>
          /Linux version/.test(output) ? true : undefined,
        );
        assert.match(output.slice(0, 2000), /Linux version/, 'read from the start of the boot');
      } finally {
        serial.destroy();
      }
    } finally {
      await hostB.stopVm(started.externalId, context, { force: true });
      await hostB.deleteVm(started.externalId, context);
    }
  });
});
