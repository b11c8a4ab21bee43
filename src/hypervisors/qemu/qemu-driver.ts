/**
 * The QEMU driver for the local host: VMs are QEMU processes it starts
 * detached and reaches through QMP. Its state lives in a directory (one
 * vm.json per VM), so a new driver instance — after an agent or control-plane
 * restart — finds every VM again and re-attaches to the running ones.
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import { DeltaFeed } from '../delta-feed.js';
import type {
  ActionContext,
  Capability,
  CloneOptions,
  ConsoleKind,
  DiscoveredObject,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  MigrateOptions,
  PowerState,
  VmFootprint,
  VmMetrics,
  SnapshotInfo,
  VmSpec,
} from '../driver.js';
import { vmOnHost, vmPowerCapabilities } from '../driver.js';
import { resolveAccelerator } from './command-line.js';
import {
  hostBridges,
  hostFacts,
  inspectLocalHost,
  probeKvm,
  type LocalHost,
} from './host-facts.js';
import type { QemuHost } from './qemu-host.js';
import { QemuMigrationEndpoint } from './qemu-migration-endpoint.js';
import { QemuMigrations } from './qemu-migration.js';
import { QemuDiskStreams } from './qemu-disk-streams.js';
import { QemuGuestAgent } from './qemu-guest-agent.js';
import { QemuPortableVms } from './qemu-portable-vm.js';
import { readVmMetrics } from './qemu-metrics.js';
import { basesOf, cloneDisks, cloneSpec, linkedClonesOf, refuseIfBase } from './qemu-clone.js';
import { DiskClaims } from './disk-claims.js';
import { backingChain, createImage, imageInfo } from './qemu-img.js';
import { thawLeftFrozen } from './guest-quiesce.js';
import { QemuSnapshots } from './qemu-snapshots.js';
import { QemuStorageScan } from './qemu-storage-scan.js';
import { QemuSyncMirrors } from './qemu-sync-mirrors.js';
import { QemuSyncReplication } from './qemu-sync-replication.js';
import { QemuVm, type VmRecord } from './qemu-vm.js';
import { validateSpec, type HostLimits, type QemuVmSpec } from './vm-spec.js';

export interface QemuDriverOptions {
  stateDir: string;
  storageRoots: string[];
  accelerator: 'kvm' | 'tcg' | 'auto';
  /** Whether KVM guests actually run here (KVM present is not enough on nested hosts). */
  kvmUsable?: boolean;
  binary?: string;
  hostName?: string;
  shutdownTimeoutMs?: number;
  /** The address this host receives live migrations on (default 127.0.0.1). */
  migrationAddress?: string;
  clock: Clock;
  logger: Logger;
}

/** What a QEMU host does (an agent's host too: its agent runs this driver). */
export const qemuCapabilities: readonly Capability[] = [
  ...vmPowerCapabilities,
  'vm.create',
  'vm.clone',
  'vm.snapshot',
  'vm.console',
  // To and from other QEMU hosts, through the migration facet; one QEMU connection (or agent) is one host.
  'vm.migrate',
];

export class QemuDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'qemu', simulated: false, capabilities: qemuCapabilities };
  readonly #options: QemuDriverOptions;
  readonly #binary: string;
  readonly #feed = new DeltaFeed();
  readonly #vms = new Map<string, QemuVm>();
  readonly #runDir: string;
  /** A hash of the state directory: names this driver's sockets directory and its taps. */
  readonly #hostKey: string;
  readonly #snapshots: QemuSnapshots;
  /** Names of clones being written: taken, though no VM carries them yet. */
  readonly #cloning = new Set<string>();
  /** Which VM owns each disk, kept in the storage roots (shared with other hosts there). */
  readonly #claims: DiskClaims;
  #host: LocalHost | undefined;
  #kvmProbed: boolean | undefined;
  /** What the facets work through (qemu-host.ts). */
  readonly #qemuHost: QemuHost;
  readonly #migrations: QemuMigrations;
  /** Checks started at a restart that run on in the background (never failing): close waits for them. */
  readonly #afterRestart: Array<Promise<void>> = [];
  readonly facets: {
    migration: QemuMigrationEndpoint;
    portableVms: QemuPortableVms;
    diskStreams: QemuDiskStreams;
    guestAgent: QemuGuestAgent;
    syncReplication: QemuSyncReplication;
    storageScan: QemuStorageScan;
  };
  /** Synchronous mirrors of its VMs' disks to replica daemons (qemu-sync-mirrors.ts). */
  readonly syncMirrors: QemuSyncMirrors;

  constructor(options: QemuDriverOptions) {
    this.#options = options;
    this.#binary = options.binary ?? 'qemu-system-x86_64';
    // Unix socket paths are limited to 108 bytes: sockets live in a short per-driver directory.
    this.#hostKey = createHash('sha256').update(options.stateDir).digest('hex').slice(0, 12);
    const base = existsSync('/run') ? '/run/zenith' : join(tmpdir(), 'zenith-run');
    this.#runDir = join(base, this.#hostKey);
    this.#claims = new DiskClaims(options.storageRoots);
    this.#qemuHost = {
      storageRoots: options.storageRoots,
      clock: options.clock,
      logger: options.logger,
      accelerator: options.accelerator,
      migrationAddress: options.migrationAddress ?? '127.0.0.1',
      claims: this.#claims,
      find: (id) => this.#vms.get(id),
      all: () => this.#vms.values(),
      vm: (id) => this.#vm(id),
      instance: (record) => this.#instance(record),
      view: (vm) => this.#view(vm),
      validate: (spec) => validateSpec(spec, this.#limits(this.#requireHost())),
      expect: (vm, states) => this.#expect(vm, states),
      requireFreeName: (name) => this.#requireFreeName(name),
      newVmId: () => newId('vm', this.#options.clock.now()).replace('vm_', 'q'),
      forget: (vm, removeDisks) => this.#forget(vm, removeDisks),
      discardMovedAway: (uuids) => this.discardMovedAway(uuids),
      abandonReception: (uuid) => this.#abandonReception(uuid),
    };
    this.#migrations = new QemuMigrations(this.#qemuHost);
    this.syncMirrors = new QemuSyncMirrors(this.#qemuHost);
    this.facets = {
      migration: new QemuMigrationEndpoint(this.#qemuHost, this.#migrations),
      portableVms: new QemuPortableVms(this.#qemuHost),
      diskStreams: new QemuDiskStreams(this.#qemuHost),
      guestAgent: new QemuGuestAgent(this.#qemuHost),
      syncReplication: new QemuSyncReplication(this.#qemuHost, this.syncMirrors),
      storageScan: new QemuStorageScan(this.#qemuHost),
    };
    this.#snapshots = new QemuSnapshots(options.clock);
  }

  get #kvmUsable(): boolean {
    return this.#options.kvmUsable ?? this.#kvmProbed ?? false;
  }

  async connect(): Promise<void> {
    this.#host = await inspectLocalHost(this.#binary, this.#options.hostName);
    if (this.#options.kvmUsable === undefined && this.#options.accelerator === 'auto')
      this.#kvmProbed = await probeKvm(this.#binary);
    for (const root of this.#options.storageRoots) mkdirSync(root, { recursive: true });
    mkdirSync(join(this.#options.stateDir, 'vms'), { recursive: true, mode: 0o700 });
    mkdirSync(this.#runDir, { recursive: true, mode: 0o700 });
    for (const id of readdirSync(join(this.#options.stateDir, 'vms'))) {
      const file = join(this.#options.stateDir, 'vms', id, 'vm.json');
      if (!existsSync(file)) continue;
      const vm = this.#instance(JSON.parse(readFileSync(file, 'utf8')) as VmRecord);
      if (vm.record.incoming) {
        await vm.attach().catch(() => undefined);
        // A reception that has the whole VM stays, paused and unreported, for the control plane to
        // finish or abort: its source may have let go of its own copy meanwhile. One still receiving
        // lost nothing the source does not hold (its QEMU goes on until told): it goes.
        if ((await this.#migrations.incomingState(vm.id)) === 'received') {
          vm.incoming = true;
          continue;
        }
        await this.#migrations.abortIncoming(vm.id);
        continue;
      }
      this.#claimExisting(vm);
      // A VM that was migrating away stays hidden until its migration is settled: it may run elsewhere now.
      if (vm.record.outgoing) {
        vm.outgoing = true;
        vm.departed = true;
      }
      await vm
        .attach()
        .catch((error: unknown) =>
          this.#options.logger.warn(
            { vm: id, err: (error as Error).message },
            'could not re-attach',
          ),
        );
      // A guest a killed predecessor left frozen (between a backup's freeze and thaw) is thawed.
      if (vm.pid !== null && vm.record.spec.guestAgent)
        this.#afterRestart.push(thawLeftFrozen(vm, this.#qemuHost));
      // Settled in the background: the VM stays hidden while its outgoing migration may still complete.
      if (vm.record.outgoing)
        void this.#migrations
          .settleAfterRestart(vm)
          .catch((error: unknown) =>
            this.#options.logger.warn(
              { vm: id, err: (error as Error).message },
              'could not settle an interrupted outgoing migration',
            ),
          );
    }
  }

  async discover(): Promise<DiscoverySnapshot> {
    const host = this.#requireHost();
    const hostObject: DiscoveredObject = {
      kind: 'host',
      externalId: host.name,
      name: host.name,
      parent: null,
      facts: hostFacts(host, {
        kvmUsable: this.#kvmUsable,
        storageRoots: this.#options.storageRoots,
      }),
    };
    const reported = [...this.#vms.values()].filter((vm) => !vm.incoming && !vm.departed);
    return { objects: [hostObject, ...reported.map((vm) => this.#view(vm))] };
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#feed.watch(signal);
  }

  /** A new VM's spec from a request, checked against this host (nothing is created). */
  #newSpec(spec: VmSpec): QemuVmSpec {
    const host = this.#requireHost();
    this.#requireFreeName(spec.name);
    const options = (spec.options ?? {}) as Partial<QemuVmSpec> & {
      kernel?: string;
      initrd?: string;
      cmdline?: string;
      baseImage?: string;
    };
    const validated = validateSpec(
      {
        name: spec.name,
        cpus: spec.cpus,
        memoryMiB: Math.round(spec.memoryBytes / 1048576),
        disks:
          options.disks ??
          (spec.diskBytes > 0 || options.baseImage
            ? [
                {
                  file: `${spec.name}/disk0.qcow2`,
                  ...(options.baseImage
                    ? { backingFile: options.baseImage }
                    : { sizeBytes: spec.diskBytes }),
                },
              ]
            : []),
        boot:
          options.boot ??
          (options.kernel
            ? {
                kind: 'kernel',
                kernel: options.kernel,
                ...(options.initrd ? { initrd: options.initrd } : {}),
                ...(options.cmdline ? { cmdline: options.cmdline } : {}),
              }
            : { kind: 'disk' }),
        nics: options.nics ?? [{ mode: 'user' }],
        vnc: options.vnc ?? true,
        accelerator: options.accelerator ?? this.#options.accelerator,
        ...(options.guestAgent !== undefined ? { guestAgent: options.guestAgent } : {}),
        uuid: randomUUID(),
      },
      this.#limits(host),
    );
    // MACs are derived from the VM's id: a request does not choose them.
    return { ...validated, nics: validated.nics.map(({ mac: _, ...nic }) => nic) };
  }

  /**
   * Refuses disks and boot files a new VM may not use: a file that is another VM's disk, or backs
   * one, or has one under it. A new disk gets a new file; an existing file may be attached only if
   * no other VM uses it; a base image and a kernel are read by the VM, so no VM may write them.
   * Answers each disk's capacity and the images under it.
   */
  async #checkDisks(
    spec: QemuVmSpec,
  ): Promise<Array<{ capacityBytes: number; backing: string[] }>> {
    const owner = { uuid: spec.uuid!, name: spec.name };
    const files = spec.disks.map((disk) => disk.file);
    const twice = files.find((file, index) => files.indexOf(file) !== index);
    if (twice !== undefined)
      throw new ZenithError('ZEN_BAD_REQUEST', `${twice} is given as two disks`, { file: twice });
    const checked = [];
    for (const disk of spec.disks) {
      const isNew = disk.sizeBytes !== undefined || disk.backingFile !== undefined;
      if (isNew && existsSync(disk.file))
        throw new ZenithError('ZEN_CONFLICT', `the disk ${disk.file} exists already`, {
          file: disk.file,
        });
      if (disk.sizeBytes !== undefined) {
        checked.push({ capacityBytes: disk.sizeBytes, backing: [] });
        continue;
      }
      const image = disk.backingFile ?? disk.file;
      if (!existsSync(image))
        throw new ZenithError('ZEN_BAD_REQUEST', `there is no image ${image} on this host`, {
          file: image,
        });
      const chain = await backingChain(image);
      if (disk.backingFile !== undefined) this.#claims.checkImage(image, owner, chain);
      else this.#claims.checkUsable(image, owner, chain);
      const { virtualSizeBytes } = await imageInfo(image);
      checked.push({
        capacityBytes: virtualSizeBytes,
        backing: disk.backingFile !== undefined ? [image, ...chain] : chain,
      });
    }
    if (spec.boot.kind === 'kernel')
      for (const file of [spec.boot.kernel, spec.boot.initrd])
        if (file !== undefined) this.#claims.checkImage(file, owner);
    return checked;
  }

  async checkNewVm(spec: VmSpec): Promise<VmFootprint> {
    const qemuSpec = this.#newSpec(spec);
    const disks = await this.#checkDisks(qemuSpec);
    return {
      cpus: qemuSpec.cpus,
      memoryBytes: qemuSpec.memoryMiB * 1048576,
      diskBytes: disks.reduce((sum, disk) => sum + disk.capacityBytes, 0),
    };
  }

  async createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    const qemuSpec = this.#newSpec(spec);
    const checked = await this.#checkDisks(qemuSpec);
    const owner = { uuid: qemuSpec.uuid!, name: qemuSpec.name };
    context.progress({ percent: 10, message: 'creating disks' });
    const created: string[] = [];
    const claimed: string[] = [];
    try {
      for (const [index, disk] of qemuSpec.disks.entries()) {
        if (disk.sizeBytes !== undefined || disk.backingFile) {
          mkdirSync(dirname(disk.file), { recursive: true });
          await createImage(
            disk.file,
            disk.backingFile ? { backingFile: disk.backingFile } : { sizeBytes: disk.sizeBytes! },
          );
          created.push(disk.file);
        }
        // Exclusive: of two VMs racing for one existing file, one gets ZEN_DISK_IN_USE here.
        this.#claims.claim(disk.file, owner, checked[index]!.backing);
        claimed.push(disk.file);
      }
    } catch (error) {
      for (const file of claimed) this.#claims.release(file, owner);
      for (const file of created) rmSync(file, { force: true });
      throw error;
    }
    const vm = this.#instance({
      id: this.#qemuHost.newVmId(),
      spec: {
        ...qemuSpec,
        disks: qemuSpec.disks.map((disk, index) =>
          disk.sizeBytes !== undefined
            ? disk
            : { ...disk, capacityBytes: checked[index]!.capacityBytes },
        ),
      },
      createdAt: this.#options.clock.now(),
      desired: 'stopped',
    });
    vm.save();
    return this.#view(vm);
  }

  /** A VM found on start claims its disks if nothing claims them yet (VMs made before claims). */
  #claimExisting(vm: QemuVm): void {
    const owner = { uuid: vm.record.spec.uuid ?? vm.record.id, name: vm.record.spec.name };
    for (const disk of vm.record.spec.disks) {
      if (this.#claims.owner(disk.file)) continue;
      try {
        this.#claims.claim(disk.file, owner, disk.backingFile ? [disk.backingFile] : []);
      } catch (error) {
        this.#options.logger.warn(
          { vm: vm.id, file: disk.file, err: (error as Error).message },
          'a disk of this VM is claimed by another VM',
        );
      }
    }
  }

  async startVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['stopped']);
    this.#refuseIfBase(vm, 'started');
    context.progress({ percent: 10, message: 'starting QEMU' });
    await vm.start();
    return this.#view(vm);
  }

  async stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['running', 'suspended', 'paused']);
    if (options.force === false) {
      // Ask the guest (ACPI power button); power off if it has not gone within the timeout.
      vm.expectStop();
      await vm.qmp().execute('system_powerdown');
      const deadline = this.#options.clock.now() + (this.#options.shutdownTimeoutMs ?? 60_000);
      while (vm.pid !== null && this.#options.clock.now() < deadline && !context.signal.aborted)
        await new Promise((r) => setTimeout(r, 100));
    }
    // Gone by itself (the guest powered off): its taps may still be being removed.
    if (vm.pid !== null) await vm.quit();
    else await vm.releaseNetwork();
    return this.#view(vm);
  }

  async rebootVm(id: string): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['running']);
    await vm.qmp().execute('system_reset');
    return this.#view(vm);
  }

  /** QEMU's reset button; a suspended VM runs again afterwards. */
  async resetVm(id: string): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['running', 'suspended', 'paused']);
    await vm.qmp().execute('system_reset');
    if (vm.power !== 'running') {
      const resumed = vm.qmp().waitForEvent('RESUME');
      await vm.qmp().execute('cont');
      await resumed;
    }
    await vm.refreshNow();
    return this.#view(vm);
  }

  async suspendVm(id: string): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['running']);
    const stopped = vm.qmp().waitForEvent('STOP');
    await vm.qmp().execute('stop');
    await stopped;
    vm.power = 'suspended';
    return this.#view(vm);
  }

  async resumeVm(id: string): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#expect(vm, ['suspended', 'paused']);
    const resumed = vm.qmp().waitForEvent('RESUME');
    await vm.qmp().execute('cont');
    await resumed;
    vm.power = 'running';
    return this.#view(vm);
  }

  async deleteVm(id: string, _context: ActionContext): Promise<null> {
    const vm = this.#vm(id);
    this.#expect(vm, ['stopped']);
    this.#refuseIfBase(vm, 'deleted');
    const bases = basesOf(vm, this.#vms.values());
    await vm.releaseNetwork();
    this.#removeDisks(vm, true);
    this.#forget(vm, false);
    // A VM whose disks backed this one may change again: its facts say so.
    for (const base of bases) this.#feed.push({ type: 'upsert', object: this.#view(base) });
    return null;
  }

  // --- snapshots (qemu-snapshots.ts) and clones (qemu-clone.ts) ---

  async listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return this.#snapshots.list(this.#vm(id));
  }

  async createSnapshot(
    id: string,
    name: string,
    context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
    const vm = this.#vm(id);
    this.#refuseIfBase(vm, 'snapshotted');
    const snapshot = await this.#snapshots.create(vm, name, context);
    return { snapshot, vm: this.#view(vm) };
  }

  async revertSnapshot(
    id: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#refuseIfBase(vm, 'reverted');
    await this.#snapshots.revert(vm, snapshotId, context);
    return this.#view(vm);
  }

  async deleteSnapshot(
    id: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    this.#refuseIfBase(vm, 'changed');
    await this.#snapshots.remove(vm, snapshotId, context);
    return this.#view(vm);
  }

  /** A stopped VM's twin: new name, id and UUID, its disks copied (or overlaid when linked). */
  async cloneVm(id: string, options: CloneOptions, context: ActionContext): Promise<DiscoveredVm> {
    const source = this.#vm(id);
    this.#expect(source, ['stopped']);
    this.#requireFreeName(options.name);
    const spec = cloneSpec(source.record.spec, options.name, this.#limits(this.#requireHost()));
    this.#cloning.add(options.name);
    try {
      const disks = await cloneDisks(source.record.spec.disks, spec.disks, options, context);
      const owner = { uuid: spec.uuid!, name: spec.name };
      try {
        for (const disk of disks)
          this.#claims.claim(disk.file, owner, disk.backingFile ? [disk.backingFile] : []);
      } catch (error) {
        for (const disk of disks) {
          this.#claims.release(disk.file, owner);
          rmSync(disk.file, { force: true });
        }
        throw error;
      }
      const clone = this.#instance({
        id: this.#qemuHost.newVmId(),
        spec: { ...spec, disks },
        createdAt: this.#options.clock.now(),
        desired: 'stopped',
      });
      clone.save();
      // The source now backs a clone: its facts say so.
      if (options.linked) this.#feed.push({ type: 'upsert', object: this.#view(source) });
      return this.#view(clone);
    } finally {
      this.#cloning.delete(options.name);
    }
  }

  #refuseIfBase(vm: QemuVm, what: string): void {
    refuseIfBase(vm, this.#vms.values(), what);
  }

  #requireFreeName(name: string): void {
    if (
      this.#cloning.has(name) ||
      [...this.#vms.values()].some((vm) => vm.record.spec.name === name)
    )
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a VM named '${name}' exists on ${this.#requireHost().name}`,
        { name },
      );
  }

  #limits(host: LocalHost): HostLimits {
    return {
      storageRoots: this.#options.storageRoots,
      cpuCount: host.cpuCount,
      memoryBytes: host.memoryBytes,
      bridges: hostBridges(),
    };
  }

  /** Removes the disks the VM made (attached files stay) and ends its claims on them (on all, when it is gone). */
  #removeDisks(vm: QemuVm, gone: boolean): void {
    const owner = { uuid: vm.record.spec.uuid ?? vm.record.id };
    for (const disk of vm.record.spec.disks) {
      const made = disk.sizeBytes !== undefined || disk.backingFile !== undefined;
      if (made) rmSync(disk.file, { force: true });
      if (made || gone) this.#claims.release(disk.file, owner);
    }
  }

  #forget(vm: QemuVm, removeDisks: boolean): void {
    if (removeDisks) this.#removeDisks(vm, false);
    rmSync(vm.dir, { recursive: true, force: true });
    for (const path of [
      vm.paths.qmpSocket,
      vm.paths.serialSocket,
      vm.paths.vncSocket,
      vm.paths.pidFile,
    ])
      rmSync(path, { force: true });
    this.#vms.delete(vm.id);
    this.#feed.push({ type: 'remove', kind: 'vm', externalId: vm.id });
  }

  async migrateVm(
    _id: string,
    _target: string,
    _context: ActionContext,
    _options?: MigrateOptions,
  ): Promise<DiscoveredVm> {
    // One QEMU connection is one host: migrations go to another connection's host (the migration facet).
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'a QEMU connection has one host: migrate to a host of another connection (an agent host)',
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.#afterRestart.splice(0));
    // The VMs keep running: only the QMP connections are let go.
    await Promise.all([...this.#vms.values()].map((vm) => vm.detach()));
    this.#feed.close();
  }

  async openConsole(id: string, kind: ConsoleKind): Promise<Duplex> {
    const vm = this.#vm(id);
    if (vm.power === 'stopped')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.record.spec.name} is stopped; start it to reach its console`,
      );
    if (kind === 'vnc' && !vm.record.spec.vnc)
      throw new ZenithError('ZEN_UNSUPPORTED', `${vm.record.spec.name} has no graphical console`);
    const path = kind === 'serial' ? vm.paths.serialSocket : vm.paths.vncSocket;
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(socket));
      socket.once('error', (error) =>
        reject(
          new ZenithError('ZEN_DRIVER_ERROR', `cannot reach the ${kind} console: ${error.message}`),
        ),
      );
    });
  }

  async vmMetrics(id: string): Promise<VmMetrics | null> {
    const vm = this.#vm(id);
    return vm.incoming || vm.departed ? null : readVmMetrics(vm, this.#options.clock.now());
  }

  /** Metrics of every running VM this host reports (for the agent's heartbeat). */
  async allMetrics(): Promise<Record<string, VmMetrics>> {
    const all: Record<string, VmMetrics> = {};
    for (const vm of this.#vms.values()) {
      if (vm.pid === null || vm.incoming || vm.departed) continue;
      const metrics = await readVmMetrics(vm, this.#options.clock.now()).catch(() => null);
      if (metrics) all[vm.id] = metrics;
    }
    return all;
  }

  /**
   * Every VM of this host with its QEMU process and disk files, for the agent's high-availability
   * watchdog; `transient` marks half of a migration (arriving, or gone away).
   */
  localVms(): Array<{
    id: string;
    name: string;
    uuid: string | null;
    pid: number | null;
    transient: boolean;
    diskFiles: string[];
  }> {
    return [...this.#vms.values()].map((vm) => ({
      id: vm.id,
      name: vm.record.spec.name,
      uuid: vm.record.spec.uuid ?? null,
      pid: vm.pid,
      transient: vm.incoming || vm.departed,
      diskFiles: vm.record.spec.disks.map((disk) => disk.file),
    }));
  }

  /** High availability kills this QEMU process now (fencing): its VM's stop is recorded as fenced. */
  noteFencing(pid: number): void {
    for (const vm of this.#vms.values()) if (vm.pid === pid) vm.expectStop('fenced');
  }

  /**
   * Removes this host's stale definitions of VMs that high availability restarted on another host
   * while this one was away (by UUID): the definition and its directory, its run files (QMP,
   * console and VNC sockets, pid file), its taps. Never a disk nor a disk claim: the VM runs
   * elsewhere with those very disks, claimed for its UUID. A definition whose QEMU runs here, or
   * half of a migration, is kept and said why: that is for an operator, not for clean-up.
   */
  async discardMovedAway(
    uuids: string[],
  ): Promise<{ discarded: string[]; kept: Array<{ uuid: string; reason: string }> }> {
    const wanted = new Set(uuids);
    const discarded: string[] = [];
    const kept: Array<{ uuid: string; reason: string }> = [];
    for (const vm of [...this.#vms.values()]) {
      const uuid = vm.record.spec.uuid;
      if (uuid === undefined || !wanted.has(uuid)) continue;
      if (vm.incoming || vm.outgoing || vm.departed || vm.record.incoming || vm.record.outgoing) {
        kept.push({ uuid, reason: 'a migration of it is under way' });
        continue;
      }
      if (vm.pid !== null || vm.power !== 'stopped' || vm.starting) {
        kept.push({ uuid, reason: `it is ${vm.starting ? 'starting' : vm.power} here` });
        continue;
      }
      await vm.releaseNetwork();
      this.#forget(vm, false);
      discarded.push(uuid);
      this.#options.logger.warn(
        { vm: vm.record.spec.name, id: vm.id, uuid },
        'discarded the definition of a VM that runs on another host now (its disks stay)',
      );
    }
    return { discarded, kept };
  }

  async #abandonReception(uuid: string): Promise<void> {
    for (const vm of [...this.#vms.values()]) {
      if (vm.record.spec.uuid !== uuid || !vm.record.incoming) continue;
      if ((await this.#migrations.incomingState(vm.id)) === 'received') continue;
      this.#options.logger.warn(
        { vm: vm.record.spec.name, id: vm.id, uuid },
        'removed a reception of a VM that is started here from its disks: its source sends nothing more',
      );
      await this.#migrations.abortIncoming(vm.id);
    }
  }

  /** The serial console's unix socket of a running VM (for the console relay). */
  serialSocket(id: string): string {
    return this.#vm(id).paths.serialSocket;
  }

  /** The host end of a VM's guest agent channel (a unix socket; with `guestAgent` only). */
  agentSocket(id: string): string {
    return this.#vm(id).paths.agentSocket;
  }

  #instance(record: VmRecord): QemuVm {
    const dir = join(this.#options.stateDir, 'vms', record.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const paths = {
      qmpSocket: join(this.#runDir, `${record.id}.qmp`),
      serialSocket: join(this.#runDir, `${record.id}.serial`),
      vncSocket: join(this.#runDir, `${record.id}.vnc`),
      agentSocket: join(this.#runDir, `${record.id}.qga`),
      pidFile: join(this.#runDir, `${record.id}.pid`),
    };
    const vm = new QemuVm(record, dir, paths, {
      binary: this.#binary,
      hostKey: this.#hostKey,
      clock: this.#options.clock,
      logger: this.#options.logger,
      accelerator: (spec) => resolveAccelerator(spec.accelerator, this.#kvmUsable),
      onChange: (changed) => {
        if (!changed.incoming && !changed.outgoing && !changed.departed && !changed.snapshotting)
          this.#feed.push({ type: 'upsert', object: this.#view(changed) });
      },
    });
    this.#vms.set(record.id, vm);
    return vm;
  }

  #view(vm: QemuVm): DiscoveredVm {
    const host = this.#requireHost();
    const spec = vm.record.spec;
    return vmOnHost(host.name, {
      externalId: vm.id,
      name: spec.name,
      powerState: vm.power,
      facts: {
        'hypervisor.type': 'qemu',
        'vm.uuid': spec.uuid ?? null,
        'cpu.count': spec.cpus,
        'memory.bytes': spec.memoryMiB * 1048576,
        'disk.totalBytes': spec.disks.reduce(
          (sum, d) => sum + (d.sizeBytes ?? d.capacityBytes ?? 0),
          0,
        ),
        'power.state': vm.power,
        'power.reason': vm.reason,
        // Why its QEMU last ended and when (null while it runs): VM monitoring reads them.
        'power.stopCause': vm.power === 'stopped' ? (vm.lastStop?.cause ?? null) : null,
        'power.stoppedAt':
          vm.power === 'stopped' && vm.lastStop ? new Date(vm.lastStop.at).toISOString() : null,
        'qemu.pid': vm.pid,
        // Reboots, panics and triple faults of the guest since its QEMU started (0 after a restart or migration).
        'guest.resets': vm.guestResets,
        'guest.lastReset': vm.lastGuestReset
          ? `${vm.lastGuestReset.at} ${vm.lastGuestReset.reason}`
          : null,
        'qemu.accelerator': resolveAccelerator(spec.accelerator, this.#kvmUsable),
        'boot.kind': spec.boot.kind,
        'console.serial': true,
        'console.vnc': spec.vnc,
        // A guest agent channel (whether an agent answers on it is the guest's business).
        'guest.agentChannel': spec.guestAgent === true,
        'network.macs': vm.nics.map((nic) => nic.mac),
        // The host's taps of its bridged NICs, in NIC order; they exist while its QEMU runs.
        'network.taps': vm.tapNames,
        'snapshot.count': this.#snapshots.count(vm),
        'clone.linkedClones': linkedClonesOf(vm, this.#vms.values()).map((c) => c.record.spec.name),
      },
    });
  }

  #vm(id: string): QemuVm {
    const vm = this.#vms.get(id);
    if (!vm)
      throw new ZenithError('ZEN_NOT_FOUND', `no QEMU VM ${id} on this host`, { externalId: id });
    return vm;
  }

  #expect(vm: QemuVm, states: PowerState[]): void {
    if (!states.includes(vm.power))
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.record.spec.name} is ${vm.power}; this action needs it ${states.join(' or ')}`,
        { powerState: vm.power },
      );
  }

  #requireHost(): LocalHost {
    if (!this.#host)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the QEMU driver is not connected');
    return this.#host;
  }
}
