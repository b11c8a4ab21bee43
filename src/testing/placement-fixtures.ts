/**
 * Placement models without a store or a server: from a simulated fleet (as
 * the simulated driver discovers it, at any size) or from a few hand-made
 * hosts and VMs. For unit tests of the planner and rebalancer, and benches.
 */
import {
  defaultFleet,
  generateFleet,
  hostObject,
  vmObject,
  type FleetSettings,
} from '../hypervisors/simulated/fleet.js';
import type { DiscoveredObject, Facts } from '../hypervisors/driver.js';
import { InventoryIndex } from '../services/inventory/inventory-index.js';
import type { ManagedObject } from '../services/inventory/model.js';
import {
  PlacementModel,
  sameConnectionOnly,
  type HostMode,
} from '../services/placement/placement-model.js';
import { compilePolicy, type PolicyInput } from '../services/policy/policy-document.js';
import type { PolicyIndex } from '../services/policy/policy-service.js';

const GiB = 1024 ** 3;
const connectionId = 'conn_fixture';

function managed(
  object: DiscoveredObject,
  idOf: (externalId: string) => string,
  computed: Facts = {},
): ManagedObject {
  return {
    id: idOf(object.externalId),
    kind: object.kind,
    name: object.name,
    parentId: object.parent ? idOf(object.parent.externalId) : null,
    connectionId,
    externalId: object.externalId,
    tags: [...(object.tags ?? [])].sort(),
    facts: object.facts,
    userFacts: {},
    computed,
    status: 'present',
    missingSince: null,
    createdAt: 0,
    updatedAt: 0,
  };
}

/** The inventory index of a simulated fleet, as discovery would fill it. */
export function simulatedFleetIndex(settings: Partial<FleetSettings> = {}): InventoryIndex {
  const fleet = generateFleet({ ...defaultFleet, ...settings });
  const index = new InventoryIndex();
  const idOf = (externalId: string) => `id:${externalId}`;
  for (const object of fleet.others) index.put(managed(object, idOf));
  for (const host of fleet.hosts.values()) index.put(managed(hostObject(host), idOf));
  for (const vm of fleet.vms.values()) {
    const discovered = vmObject(vm);
    index.put(managed(discovered, idOf, { 'location.hostId': idOf(vm.hostExternalId) }));
  }
  return index;
}

export interface FixtureHost {
  name: string;
  cores?: number;
  memoryGiB?: number;
  cluster?: string;
  datacenter?: string;
  tags?: string[];
  costPerHour?: number;
  type?: string;
  facts?: Facts;
}

export interface FixtureVm {
  name: string;
  host: string;
  cpus?: number;
  memoryGiB?: number;
  power?: 'running' | 'stopped' | 'suspended';
  tags?: string[];
  dirtyBytesPerSecond?: number;
  facts?: Facts;
}

/** A small inventory from hand-made hosts and VMs (ids are `host:NAME`, `vm:NAME`). */
export function fixtureIndex(hosts: FixtureHost[], vms: FixtureVm[]): InventoryIndex {
  const index = new InventoryIndex();
  const put = (
    object: Omit<
      ManagedObject,
      | 'connectionId'
      | 'externalId'
      | 'userFacts'
      | 'status'
      | 'missingSince'
      | 'createdAt'
      | 'updatedAt'
    >,
  ) =>
    index.put({
      ...object,
      connectionId,
      externalId: object.id,
      userFacts: {},
      status: 'present',
      missingSince: null,
      createdAt: 0,
      updatedAt: 0,
    });
  const containers = new Set<string>();
  for (const host of hosts) {
    const dc = `dc:${host.datacenter ?? 'dc1'}`;
    const cluster = `cl:${host.datacenter ?? 'dc1'}/${host.cluster ?? 'c1'}`;
    if (!containers.has(dc)) {
      containers.add(dc);
      put({
        id: dc,
        kind: 'datacenter',
        name: host.datacenter ?? 'dc1',
        parentId: null,
        tags: [],
        facts: {},
        computed: {},
      });
    }
    if (!containers.has(cluster)) {
      containers.add(cluster);
      put({
        id: cluster,
        kind: 'cluster',
        name: host.cluster ?? 'c1',
        parentId: dc,
        tags: [],
        facts: {},
        computed: {},
      });
    }
    put({
      id: `host:${host.name}`,
      kind: 'host',
      name: host.name,
      parentId: cluster,
      tags: [...(host.tags ?? [])].sort(),
      facts: {
        'hypervisor.type': host.type ?? 'simulated',
        'cpu.cores': host.cores ?? 16,
        'memory.totalBytes': (host.memoryGiB ?? 64) * GiB,
        'host.state': 'connected',
        ...(host.costPerHour !== undefined ? { 'cost.perHour': host.costPerHour } : {}),
        ...host.facts,
      },
      computed: {},
    });
  }
  for (const vm of vms)
    put({
      id: `vm:${vm.name}`,
      kind: 'vm',
      name: vm.name,
      parentId: `host:${vm.host}`,
      tags: [...(vm.tags ?? [])].sort(),
      facts: {
        'hypervisor.type': 'simulated',
        'cpu.count': vm.cpus ?? 1,
        'memory.bytes': (vm.memoryGiB ?? 1) * GiB,
        'power.state': vm.power ?? 'running',
        ...(vm.dirtyBytesPerSecond !== undefined
          ? { 'memory.dirtyBytesPerSecond': vm.dirtyBytesPerSecond }
          : {}),
        ...vm.facts,
      },
      computed: { 'location.hostId': `host:${vm.host}` },
    });
  return index;
}

/** Policies compiled and indexed as the policy service would (scope ids taken as given). */
export function policyIndexOf(policies: PolicyInput[]): PolicyIndex {
  const global = [];
  const byScopeId = new Map<string, ReturnType<typeof compilePolicy>[]>();
  for (const [i, input] of policies.entries()) {
    const compiled = compilePolicy(`pol_fixture_${i}`, input, {
      kind: input.scope.kind,
      id: input.scope.id ?? null,
    });
    if (compiled.scope.id === null) global.push(compiled);
    else byScopeId.set(compiled.scope.id, [...(byScopeId.get(compiled.scope.id) ?? []), compiled]);
  }
  return { global, byScopeId, version: 1 };
}

export function fixtureModel(
  index: InventoryIndex,
  policies: PolicyInput[] = [],
  modes?: ReadonlyMap<string, HostMode>,
): PlacementModel {
  return new PlacementModel({
    index,
    policies: policyIndexOf(policies),
    connections: sameConnectionOnly,
    ...(modes ? { modes } : {}),
  });
}
