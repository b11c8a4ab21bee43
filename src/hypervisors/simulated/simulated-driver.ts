/**
 * The simulated driver: a deterministic fleet that supports every lifecycle
 * operation and migration with realistic durations from the injected clock.
 * It is for demos, scale tests and benchmarks, and labels everything it
 * reports as simulated. Its state is kept in a journal file (like a real
 * hypervisor, it outlives a control-plane restart); an action that is cut off
 * by a crash never reaches the journal, so it did not happen.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { DeltaFeed } from '../delta-feed.js';
import { ZenithError } from '../../core/errors.js';
import type {
  ActionContext,
  Capability,
  CloneOptions,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  MigrateOptions,
  PowerState,
  SnapshotInfo,
  VmSpec,
} from '../driver.js';
import { vmPowerCapabilities } from '../driver.js';
import {
  defaultDirtyBytesPerSecond,
  defaultFleet,
  generateFleet,
  hostObject,
  vmObject,
  type FleetSettings,
  type SimFleet,
  type SimVm,
} from './fleet.js';

export interface SimulatedDriverOptions {
  fleet?: Partial<FleetSettings>;
  /** Multiplies every simulated duration: 1 is realistic, 0.01 is a hundred times faster. */
  timeScale?: number;
  /** Where the simulated hypervisor keeps its state; in memory only when absent. */
  journalPath?: string;
  /** Bandwidth of the simulated migration network. */
  migrationBytesPerSecond?: number;
  clock: Clock;
}

type JournalEntry = { op: 'vm'; vm: SimVm } | { op: 'delete'; id: string };

const capabilities: readonly Capability[] = [
  ...vmPowerCapabilities,
  'vm.migrate',
  'vm.create',
  'vm.clone',
  'vm.snapshot',
];

/** Base durations in ms of simulated time, before timeScale. */
const durations = {
  start: 1500,
  stop: 400,
  shutdown: 2500,
  reboot: 3000,
  suspend: 1000,
  resume: 700,
  delete: 500,
  create: 2000,
  migrateSetup: 300,
  snapshot: 800,
  clone: 1000,
};

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/**
 * What a migration sends of a VM's memory: nothing for a stopped VM (only its
 * definition moves), its memory once for a suspended or paused one, and for a
 * running one QEMU's pre-copy: the memory, then what the guest dirtied
 * meanwhile, pass after pass, until the rest fits in the downtime (a guest
 * that dirties faster than the link carries is throttled: about twice its
 * memory in all).
 */
function memoryToSend(vm: SimVm, bandwidth: number, maxDowntimeMs: number): number {
  if (vm.powerState === 'stopped') return 0;
  if (vm.powerState !== 'running') return vm.memoryBytes;
  const dirty = vm.dirtyBytesPerSecond ?? defaultDirtyBytesPerSecond;
  if (dirty >= bandwidth) return vm.memoryBytes * 2;
  const ratio = dirty / bandwidth;
  const lastPass = (bandwidth * maxDowntimeMs) / 1000;
  let remaining = vm.memoryBytes;
  let total = 0;
  for (let pass = 0; pass < 30 && remaining > lastPass; pass++) {
    total += remaining;
    remaining *= ratio;
  }
  return total + remaining;
}

export class SimulatedDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'simulated', simulated: true, capabilities };
  readonly #clock: Clock;
  readonly #timeScale: number;
  readonly #journalPath: string | undefined;
  readonly #bandwidth: number;
  readonly #fleet: SimFleet;
  readonly #busy = new Set<string>();
  readonly #feed = new DeltaFeed();
  #closed = false;

  constructor(options: SimulatedDriverOptions) {
    this.#clock = options.clock;
    this.#timeScale = options.timeScale ?? 1;
    this.#journalPath = options.journalPath;
    this.#bandwidth = options.migrationBytesPerSecond ?? 1.25e9;
    this.#fleet = generateFleet({ ...defaultFleet, ...options.fleet });
    if (this.#journalPath) this.#replay(this.#journalPath);
  }

  async connect(): Promise<void> {
    if (this.#closed)
      throw new ZenithError('ZEN_CONNECTION_FAILED', 'the simulated driver was closed');
  }

  async discover(): Promise<DiscoverySnapshot> {
    return {
      objects: [
        ...this.#fleet.others,
        ...[...this.#fleet.hosts.values()].map(hostObject),
        ...[...this.#fleet.vms.values()].map(vmObject),
      ],
    };
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#feed.watch(signal);
  }

  startVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#transition(id, context, ['stopped'], durations.start, 'running');
  }

  stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    return this.#transition(
      id,
      context,
      ['running', 'suspended', 'paused'],
      options.force === false ? durations.shutdown : durations.stop,
      'stopped',
    );
  }

  rebootVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#transition(id, context, ['running'], durations.reboot, 'running');
  }

  suspendVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#transition(id, context, ['running'], durations.suspend, 'suspended');
  }

  resumeVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#transition(id, context, ['suspended', 'paused'], durations.resume, 'running');
  }

  async deleteVm(id: string, context: ActionContext): Promise<null> {
    const vm = this.#vm(id);
    return this.#exclusive(id, async () => {
      if (vm.powerState === 'running')
        throw new ZenithError('ZEN_INVALID_STATE', `stop ${vm.name} before deleting it`, {
          powerState: vm.powerState,
        });
      const clones = [...this.#fleet.vms.values()]
        .filter((other) => other.linkedCloneOf === id)
        .map((other) => other.name);
      if (clones.length > 0)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `${vm.name} cannot be deleted: the linked clones ${clones.join(', ')} share its disks; delete them first`,
          { linkedClones: clones },
        );
      await this.#work(durations.delete, context);
      this.#fleet.vms.delete(id);
      this.#record({ op: 'delete', id });
      this.#emit({ type: 'remove', kind: 'vm', externalId: id });
      return null;
    });
  }

  async createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    const host = this.#fleet.hosts.get(spec.hostExternalId);
    if (!host) throw new ZenithError('ZEN_NOT_FOUND', `no simulated host ${spec.hostExternalId}`);
    this.#checkCapacity(spec.hostExternalId, spec.memoryBytes);
    const externalId = `vm-z${this.#clock.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
    await this.#work(durations.create, context);
    const vm: SimVm = {
      externalId,
      name: spec.name,
      hostExternalId: spec.hostExternalId,
      cpus: spec.cpus,
      memoryBytes: spec.memoryBytes,
      diskBytes: spec.diskBytes,
      powerState: 'stopped',
      tags: [],
      guestOs: 'other',
      createdBy: 'zenith',
    };
    this.#commit(vm);
    return vmObject(vm);
  }

  /** A stopped VM's twin on the same host; a full clone takes as long as copying its disk. */
  async cloneVm(id: string, options: CloneOptions, context: ActionContext): Promise<DiscoveredVm> {
    const source = this.#vm(id);
    if (!vmName.test(options.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${options.name}' is not a valid VM name (letters, digits, . _ -, at most 63)`,
        { name: options.name },
      );
    return this.#exclusive(id, async () => {
      if (source.powerState !== 'stopped')
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `${source.name} is ${source.powerState}; clone needs it stopped`,
          { powerState: source.powerState },
        );
      if ([...this.#fleet.vms.values()].some((vm) => vm.name === options.name))
        throw new ZenithError('ZEN_CONFLICT', `a VM named '${options.name}' exists`, {
          name: options.name,
        });
      const copyMs = options.linked ? 0 : (source.diskBytes / this.#bandwidth) * 1000;
      await this.#work(durations.clone + copyMs, context);
      // Checked again: another clone or create may have taken the name meanwhile.
      if ([...this.#fleet.vms.values()].some((vm) => vm.name === options.name))
        throw new ZenithError('ZEN_CONFLICT', `a VM named '${options.name}' exists`, {
          name: options.name,
        });
      const clone: SimVm = {
        externalId: `vm-z${this.#clock.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`,
        name: options.name,
        hostExternalId: source.hostExternalId,
        cpus: source.cpus,
        memoryBytes: source.memoryBytes,
        diskBytes: source.diskBytes,
        powerState: 'stopped',
        tags: [...source.tags],
        guestOs: source.guestOs,
        createdBy: 'zenith',
        ...(options.linked ? { linkedCloneOf: source.externalId } : {}),
      };
      this.#commit(clone);
      return vmObject(clone);
    });
  }

  async migrateVm(
    id: string,
    target: string,
    context: ActionContext,
    options: MigrateOptions = {},
  ): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    if (!this.#fleet.hosts.has(target))
      throw new ZenithError('ZEN_NOT_FOUND', `no simulated host ${target}`, { host: target });
    if (vm.hostExternalId === target)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} already runs on that host`);
    return this.#exclusive(id, async () => {
      this.#checkCapacity(target, vm.memoryBytes);
      const bandwidth = Math.min(this.#bandwidth, options.maxBandwidthBytesPerSecond ?? Infinity);
      const total =
        memoryToSend(vm, bandwidth, options.maxDowntimeMs ?? 300) +
        (options.withStorage ? vm.diskBytes : 0);
      const transferMs = (total / bandwidth) * 1000;
      await this.#work(durations.migrateSetup, context);
      const steps = 10;
      for (let step = 1; step <= steps; step++) {
        await this.#clock.sleep((transferMs / steps) * this.#timeScale, context.signal);
        const sent = Math.round((total * step) / steps);
        context.progress({
          percent: step * 10,
          message: `pass ${step}`,
          details: { bytesSent: sent, bytesRemaining: Math.round(total - sent) },
        });
      }
      const moved: SimVm = { ...vm, hostExternalId: target };
      this.#commit(moved);
      return vmObject(moved);
    });
  }

  async listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return (this.#vm(id).snapshots ?? []).map((s) => ({ ...s }));
  }

  async createSnapshot(
    id: string,
    name: string,
    context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
    return this.#exclusive(id, async () => {
      const vm = this.#vm(id);
      if ((vm.snapshots ?? []).some((s) => s.name === name)) {
        throw new ZenithError('ZEN_CONFLICT', `${vm.name} already has a snapshot named '${name}'`, {
          name,
        });
      }
      // Memory is saved too when the guest runs.
      await this.#work(
        durations.snapshot +
          (vm.powerState === 'running' ? (vm.memoryBytes / this.#bandwidth) * 1000 : 0),
        context,
      );
      const snapshot = {
        id: `snap-${this.#clock.now().toString(36)}-${(vm.snapshots?.length ?? 0) + 1}`,
        name,
        createdAt: this.#clock.now(),
        powerState: vm.powerState,
      };
      const after: SimVm = { ...this.#vm(id), snapshots: [...(vm.snapshots ?? []), snapshot] };
      this.#commit(after);
      return { snapshot: { ...snapshot }, vm: vmObject(after) };
    });
  }

  async revertSnapshot(
    id: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    return this.#exclusive(id, async () => {
      const snapshot = this.#snapshot(id, snapshotId);
      await this.#work(durations.snapshot, context);
      const reverted: SimVm = { ...this.#vm(id), powerState: snapshot.powerState };
      this.#commit(reverted);
      return vmObject(reverted);
    });
  }

  async deleteSnapshot(
    id: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    return this.#exclusive(id, async () => {
      const gone = this.#snapshot(id, snapshotId);
      await this.#work(durations.snapshot, context);
      const vm = this.#vm(id);
      const after: SimVm = {
        ...vm,
        snapshots: (vm.snapshots ?? []).filter((s) => s.id !== gone.id),
      };
      this.#commit(after);
      return vmObject(after);
    });
  }

  #snapshot(id: string, snapshotId: string): NonNullable<SimVm['snapshots']>[number] {
    const vm = this.#vm(id);
    const snapshot = (vm.snapshots ?? []).find((s) => s.id === snapshotId || s.name === snapshotId);
    if (!snapshot)
      throw new ZenithError('ZEN_NOT_FOUND', `${vm.name} has no snapshot '${snapshotId}'`, {
        snapshot: snapshotId,
      });
    return snapshot;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#feed.close();
  }

  #vm(id: string): SimVm {
    const vm = this.#fleet.vms.get(id);
    if (!vm) throw new ZenithError('ZEN_NOT_FOUND', `no simulated VM ${id}`, { externalId: id });
    return vm;
  }

  #checkCapacity(hostId: string, memoryBytes: number): void {
    const host = this.#fleet.hosts.get(hostId)!;
    let used = 0;
    for (const other of this.#fleet.vms.values())
      if (other.hostExternalId === hostId && other.powerState !== 'stopped')
        used += other.memoryBytes;
    if (used + memoryBytes > host.memoryBytes) {
      throw new ZenithError(
        'ZEN_NO_CAPACITY',
        `host ${host.name} has ${host.memoryBytes - used} bytes of memory free, the VM needs ${memoryBytes}`,
        {
          host: host.name,
          freeBytes: host.memoryBytes - used,
          neededBytes: memoryBytes,
        },
      );
    }
  }

  async #transition(
    id: string,
    context: ActionContext,
    from: PowerState[],
    ms: number,
    to: PowerState,
  ): Promise<DiscoveredVm> {
    const vm = this.#vm(id);
    return this.#exclusive(id, async () => {
      if (!from.includes(vm.powerState)) {
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `${vm.name} is ${vm.powerState}; this action needs it ${from.join(' or ')}`,
          { powerState: vm.powerState },
        );
      }
      await this.#work(ms, context);
      const next: SimVm = { ...this.#vm(id), powerState: to };
      this.#commit(next);
      return vmObject(next);
    });
  }

  async #exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    if (this.#busy.has(id))
      throw new ZenithError('ZEN_INVALID_STATE', 'another operation on this VM is in progress', {
        externalId: id,
      });
    this.#busy.add(id);
    try {
      return await work();
    } finally {
      this.#busy.delete(id);
    }
  }

  async #work(ms: number, context: ActionContext): Promise<void> {
    context.progress({ percent: 0 });
    await this.#clock.sleep(ms * this.#timeScale, context.signal);
  }

  #commit(vm: SimVm): void {
    this.#fleet.vms.set(vm.externalId, vm);
    this.#record({ op: 'vm', vm });
    this.#emit({ type: 'upsert', object: vmObject(vm) });
  }

  #emit(delta: InventoryDelta): void {
    this.#feed.push(delta);
  }

  #record(entry: JournalEntry): void {
    if (!this.#journalPath) return;
    // Synchronous append: once an action reports success, its result survives a crash of this process.
    appendFileSync(this.#journalPath, `${JSON.stringify(entry)}\n`);
  }

  #replay(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    if (!existsSync(path)) return;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      let entry: JournalEntry;
      try {
        entry = JSON.parse(line) as JournalEntry;
      } catch {
        continue; // a torn last line from a crash: that action never completed
      }
      if (entry.op === 'vm') this.#fleet.vms.set(entry.vm.externalId, entry.vm);
      else this.#fleet.vms.delete(entry.id);
    }
  }
}
