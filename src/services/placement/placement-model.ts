/**
 * What placement decides on: every host as a slot (state, capacity with the
 * overcommit in force, what is used, the policies of its datacenter and
 * cluster) and every VM (size, where it is). Built from the inventory in one
 * pass; placement, rebalancing and the migration planner then work on it
 * without touching the inventory, and change it as they place or move VMs.
 * A VM in flight (migrating) is present on two hosts at once: it holds
 * capacity and counts for anti-affinity on both until it lands.
 */
import type { FactValue, Facts, ManagedObject } from '../inventory/model.js';
import type { InventoryIndex } from '../inventory/inventory-index.js';
import {
  ancestryOf,
  ObjectFacts,
  PlainFacts,
  requesterFacts,
  resourceGroupOf,
  type Requester,
} from '../policy/fact-sources.js';
import {
  defaultMigrationSettings,
  defaultSettings,
  mergeSettings,
  type CompiledPolicy,
} from '../policy/policy-document.js';
import type { FactSource } from '../policy/language/compiler.js';
import type { PolicyIndex } from '../policy/policy-service.js';
import { RuleGroups } from './rule-groups.js';
import type { HostMode, HostPlacementState, HostSlot, VmSlot } from './slots.js';

export type { HostMode, HostPlacementState, HostSlot, VmSlot } from './slots.js';

/** What the model needs to know about connections (live drivers), kept apart for tests and benches. */
export interface ConnectionFacts {
  isConnected(connectionId: string): boolean;
  /** Whether VMs can be created on hosts of this connection. */
  canCreate(connectionId: string): boolean;
  /** Whether a VM can move from a host of one connection to a host of the other. */
  canMigrate(fromConnectionId: string, toConnectionId: string): boolean;
}

export const sameConnectionOnly: ConnectionFacts = {
  isConnected: () => true,
  canCreate: () => true,
  canMigrate: (from, to) => from === to,
};

/** A VM that does not exist yet, as a creation request describes it. */
export interface DraftVm {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes?: number;
  type?: string;
  tags?: string[];
  /** user.* facts it will carry (user.resourceGroup puts it in a group). */
  facts?: Facts;
}

const activeStates = new Set(['running', 'suspended', 'paused', 'unknown']);
const GiB = 1024 ** 3;

function numberFact(object: ManagedObject, key: string): number | null {
  const value = object.computed[key] ?? object.facts[key] ?? object.userFacts[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Placement's live figures of a host, by fact key. */
const liveFigures = new Map<string, (slot: HostSlot) => FactValue>([
  ['cpu.capacity', (slot) => slot.cpuCapacity],
  ['cpu.used', (slot) => slot.cpuUsed],
  ['cpu.free', (slot) => slot.cpuCapacity - slot.cpuUsed],
  ['memory.capacityBytes', (slot) => slot.memoryCapacity],
  ['memory.usedBytes', (slot) => slot.memoryUsed],
  ['memory.freeBytes', (slot) => slot.memoryCapacity - slot.memoryUsed],
  ['load', (slot) => loadOf(slot)],
  ['mode', (slot) => slot.mode],
  ['placementState', (slot) => slot.state],
]);

/** A host's facts with placement's live figures laid over them. */
class HostFacts implements FactSource {
  readonly #base: ObjectFacts;

  constructor(private readonly slot: HostSlot) {
    this.#base = new ObjectFacts(slot.object);
  }

  fact(key: string): FactValue | undefined {
    const live = liveFigures.get(key);
    return live ? live(this.slot) : this.#base.fact(key);
  }
}

/** Host facts placement changes as it places: host-only expressions reading these are not cached. */
export const liveHostFacts = new Set([
  'host.cpu.used',
  'host.cpu.free',
  'host.memory.usedBytes',
  'host.memory.freeBytes',
  'host.load',
  'host.vms.total',
  'host.vms.running',
  'host.cpu.allocated',
  'host.memory.allocatedBytes',
  'host.mode',
  'host.placementState',
]);

/** The busier of CPU and memory use, 0 for a host without capacity figures. */
export function loadOf(slot: HostSlot, extraCpu = 0, extraMemory = 0): number {
  const cpu = slot.cpuCapacity > 0 ? (slot.cpuUsed + extraCpu) / slot.cpuCapacity : 0;
  const memory =
    slot.memoryCapacity > 0 ? (slot.memoryUsed + extraMemory) / slot.memoryCapacity : 0;
  return cpu > memory ? cpu : memory;
}

export interface ModelSources {
  index: InventoryIndex;
  policies: PolicyIndex;
  connections: ConnectionFacts;
  /** Zenith's own host modes (maintenance), by host id. */
  modes?: ReadonlyMap<string, HostMode>;
  /** Count hosts in standby as if they were on (what power management could wake): all, or these. */
  wakeStandby?: boolean | ReadonlySet<string>;
  requester?: Requester | undefined;
}

export class PlacementModel {
  readonly hosts: HostSlot[] = [];
  readonly hostById = new Map<string, HostSlot>();
  readonly vms = new Map<string, VmSlot>();
  readonly policies: PolicyIndex;
  readonly connections: ConnectionFacts;
  readonly requester: FactSource | undefined;
  readonly rules: RuleGroups;
  readonly index: InventoryIndex;
  readonly #policySets = new Map<string, readonly CompiledPolicy[]>();
  #wakeStandby: boolean | ReadonlySet<string> = false;
  /** Where the next sampled placement starts scanning hosts. */
  scanStart = 0;
  /** Cheapest and dearest known host cost, for ranking. */
  costRange: { min: number; max: number } | null = null;

  constructor(sources: ModelSources) {
    this.index = sources.index;
    this.policies = sources.policies;
    this.connections = sources.connections;
    this.requester = requesterFacts(sources.requester);
    this.rules = new RuleGroups(this);
    const groupFacts = new Map<string, FactSource>();
    this.#wakeStandby = sources.wakeStandby ?? false;
    for (const object of sources.index.ofKind('host')) this.#addHost(object, sources.modes);
    this.hosts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.hosts.forEach((slot, index) => (slot.index = index));
    for (const object of sources.index.ofKind('vm')) {
      if (object.status !== 'present') continue;
      const slot = this.#vmSlot(object, groupFacts);
      this.vms.set(slot.id, slot);
      const hostId = object.computed['location.hostId'];
      const host = typeof hostId === 'string' ? this.hostById.get(hostId) : undefined;
      if (host) {
        slot.home = host.index;
        this.#occupy(slot, host);
      }
    }
    let min = Infinity;
    let max = -Infinity;
    for (const host of this.hosts) {
      if (host.costPerHour === null) continue;
      min = Math.min(min, host.costPerHour);
      max = Math.max(max, host.costPerHour);
    }
    if (Number.isFinite(min)) this.costRange = { min, max };
  }

  host(idOrIndex: string | number): HostSlot {
    const slot =
      typeof idOrIndex === 'number' ? this.hosts[idOrIndex] : this.hostById.get(idOrIndex);
    if (!slot) throw new RangeError(`no host ${String(idOrIndex)} in the placement model`);
    return slot;
  }

  /** A slot for a VM that is not created yet (not added to the model until placed). */
  draftVm(draft: DraftVm): VmSlot {
    const userFacts: Facts = {};
    for (const [key, value] of Object.entries(draft.facts ?? {}))
      if (key.startsWith('user.')) userFacts[key] = value;
    const facts: Facts = {
      name: draft.name,
      kind: 'vm',
      tags: [...new Set(draft.tags ?? [])].sort(),
      'cpu.count': draft.cpus,
      'memory.bytes': draft.memoryBytes,
      'disk.totalBytes': draft.diskBytes ?? 0,
      'power.state': 'stopped',
      ...(draft.type ? { 'hypervisor.type': draft.type } : {}),
      ...userFacts,
    };
    const group = resourceGroupOf(this.index, userFacts['user.resourceGroup']);
    return {
      id: `draft:${draft.name}`,
      name: draft.name,
      object: null,
      connectionId: null,
      home: -1,
      cpu: draft.cpus,
      memoryBytes: draft.memoryBytes,
      // Created to run: it needs the room it will take once started.
      active: true,
      type: draft.type ?? null,
      dirtyBytesPerSecond: null,
      facts: new PlainFacts(facts),
      group,
      groupFacts: group ? new ObjectFacts(group) : undefined,
    };
  }

  /** Adds a placed VM to a host (a new VM, or a VM landing after a move). */
  place(vm: VmSlot, host: HostSlot): void {
    if (!this.vms.has(vm.id)) this.vms.set(vm.id, vm);
    if (vm.home === -1) vm.home = host.index;
    this.#occupy(vm, host);
  }

  /** A move begins: the VM is present on its source and its target. */
  beginMove(vm: VmSlot, target: HostSlot): void {
    this.#occupy(vm, target);
  }

  /** A move ends: the VM has left its source. */
  finishMove(vm: VmSlot, target: HostSlot): void {
    const source = this.hosts[vm.home];
    if (source && source !== target) this.#vacate(vm, source);
    vm.home = target.index;
    this.rules.refresh(vm);
  }

  /** A move that failed: the VM was never on the target after all. */
  abortMove(vm: VmSlot, target: HostSlot): void {
    if (vm.home !== target.index) this.#vacate(vm, target);
  }

  /** A whole move at once (planning): present on the target only. */
  move(vm: VmSlot, target: HostSlot): void {
    this.beginMove(vm, target);
    this.finishMove(vm, target);
  }

  /**
   * A VM starts (or stops) where it is: it holds its capacity on its host only while active.
   * Answers the state it had, to set it back.
   */
  setActive(vm: VmSlot, active: boolean): boolean {
    const was = vm.active;
    const host = this.hosts[vm.home];
    if (was === active) return was;
    if (host?.vms.has(vm.id)) {
      const sign = active ? 1 : -1;
      host.cpuUsed += sign * vm.cpu;
      host.memoryUsed += sign * vm.memoryBytes;
    }
    vm.active = active;
    return was;
  }

  /** Policies that speak about a VM wherever it goes: global, its resource group, itself. */
  vmPolicies(vm: VmSlot): CompiledPolicy[] {
    const out = [...this.policies.global];
    if (vm.group) out.push(...(this.policies.byScopeId.get(vm.group.id) ?? []));
    out.push(...(this.policies.byScopeId.get(vm.id) ?? []));
    return out;
  }

  #occupy(vm: VmSlot, host: HostSlot): void {
    if (host.vms.has(vm.id)) return;
    host.vms.add(vm.id);
    if (vm.active) {
      host.cpuUsed += vm.cpu;
      host.memoryUsed += vm.memoryBytes;
    }
    this.rules.occupy(vm, host.index);
  }

  #vacate(vm: VmSlot, host: HostSlot): void {
    if (!host.vms.delete(vm.id)) return;
    if (vm.active) {
      host.cpuUsed -= vm.cpu;
      host.memoryUsed -= vm.memoryBytes;
    }
    this.rules.vacate(vm, host.index);
  }

  #addHost(object: ManagedObject, modes: ReadonlyMap<string, HostMode> | undefined): void {
    const { cluster, datacenter } = ancestryOf(this.index, object);
    const policies: CompiledPolicy[] = [...this.policies.global];
    if (datacenter) policies.push(...(this.policies.byScopeId.get(datacenter.id) ?? []));
    if (cluster) policies.push(...(this.policies.byScopeId.get(cluster.id) ?? []));
    const settings = mergeSettings(policies);
    const mode = modes?.get(object.id) ?? 'normal';
    const cpuCores = numberFact(object, 'cpu.cores') ?? 0;
    const memoryBytes = numberFact(object, 'memory.totalBytes') ?? 0;
    const cpuOvercommit = settings.cpuOvercommit ?? defaultSettings.cpuOvercommit;
    const memoryOvercommit = settings.memoryOvercommit ?? defaultSettings.memoryOvercommit;
    const vmTypes = object.facts['hypervisor.vmTypes'];
    const ownType = object.facts['hypervisor.type'];
    const bandwidth = numberFact(object, 'network.migrationBytesPerSecond');
    const slot: HostSlot = {
      index: -1,
      object,
      id: object.id,
      name: object.name,
      connectionId: object.connectionId,
      cluster,
      datacenter,
      state: this.#stateOf(object, mode),
      mode,
      vmTypes: Array.isArray(vmTypes) ? vmTypes : typeof ownType === 'string' ? [ownType] : [],
      cpuCores,
      memoryBytes,
      cpuOvercommit,
      memoryOvercommit,
      cpuCapacity: cpuCores * cpuOvercommit,
      memoryCapacity: memoryBytes * memoryOvercommit,
      cpuUsed: 0,
      memoryUsed: 0,
      costPerHour: numberFact(object, 'cost.perHour'),
      migration: {
        ...defaultMigrationSettings,
        ...settings.migration,
        ...(bandwidth !== null ? { hostBandwidthBytesPerSecond: bandwidth } : {}),
      },
      policies: this.#interned(
        policies.filter((p) => p.scope.kind === 'datacenter' || p.scope.kind === 'cluster'),
      ),
      facts: undefined as unknown as FactSource,
      clusterFacts: cluster ? new ObjectFacts(cluster) : undefined,
      datacenterFacts: datacenter ? new ObjectFacts(datacenter) : undefined,
      vms: new Set(),
    };
    slot.facts = new HostFacts(slot);
    this.hosts.push(slot);
    this.hostById.set(slot.id, slot);
  }

  /** Hosts with the same policies share one array: placement caches what it derives per array. */
  #interned(policies: CompiledPolicy[]): readonly CompiledPolicy[] {
    const key = policies.map((p) => p.id).join(',');
    let shared = this.#policySets.get(key);
    if (!shared) this.#policySets.set(key, (shared = policies));
    return shared;
  }

  #stateOf(object: ManagedObject, mode: HostMode): HostPlacementState {
    if (object.status !== 'present') return 'failed';
    // A machine a BMC discovered runs no VMs itself, whether or not a hypervisor host is linked to it.
    if (typeof object.facts['bmc.protocol'] === 'string') return 'bare-metal';
    // Powered off on purpose (its connection is down): a candidate only when waking is allowed.
    if (mode === 'standby') {
      const wakes = this.#wakeStandby;
      return wakes === true || (wakes !== false && wakes.has(object.id)) ? 'connected' : 'standby';
    }
    if (object.connectionId && !this.connections.isConnected(object.connectionId))
      return 'disconnected';
    if (mode !== 'normal') return 'maintenance';
    const reported = object.facts['host.state'];
    if (reported === undefined || reported === null || reported === 'connected') return 'connected';
    if (reported === 'maintenance' || reported === 'inMaintenance') return 'maintenance';
    if (reported === 'disconnected') return 'disconnected';
    return 'failed';
  }

  #vmSlot(object: ManagedObject, groupFacts: Map<string, FactSource>): VmSlot {
    const group = resourceGroupOf(this.index, object.userFacts['user.resourceGroup']);
    let groupSource: FactSource | undefined;
    if (group) {
      groupSource = groupFacts.get(group.id) ?? new ObjectFacts(group);
      groupFacts.set(group.id, groupSource);
    }
    const power = object.facts['power.state'];
    const type = object.facts['vm.type'] ?? object.facts['hypervisor.type'];
    return {
      id: object.id,
      name: object.name,
      object,
      connectionId: object.connectionId,
      home: -1,
      cpu: numberFact(object, 'cpu.count') ?? 1,
      memoryBytes: numberFact(object, 'memory.bytes') ?? GiB,
      active: typeof power === 'string' ? activeStates.has(power) : true,
      type: typeof type === 'string' ? type : null,
      dirtyBytesPerSecond: numberFact(object, 'memory.dirtyBytesPerSecond'),
      facts: new ObjectFacts(object),
      group,
      groupFacts: groupSource,
    };
  }
}
