/**
 * What the vsphere driver reads of each managed object type, and how a set of
 * property values becomes a Zenith object: datacenters, clusters, hosts, VMs
 * (parented by their host), datastores, networks and resource pools, with
 * facts. The cache holds the last known properties of every object, so that
 * an incremental change (one property) can be turned into a whole object.
 */
import type { DiscoveredObject, DiscoveredVm, ExternalRef, Facts, PowerState } from '../driver.js';
import type { PropertySpec } from '../../protocols/vim/property-collector.js';
import {
  bool,
  list,
  MoRef,
  num,
  obj,
  ref,
  refs,
  str,
  type VimValue,
} from '../../protocols/vim/vim-values.js';
import { clusterHaFacts, hostHaFacts, vmHaFacts, vmHaOverrides } from './vsphere-ha.js';

/** The types the container view holds (subtypes included: ClusterComputeResource, DistributedVirtualPortgroup, VirtualApp). */
export const viewTypes = [
  'Folder',
  'Datacenter',
  'ComputeResource',
  'HostSystem',
  'VirtualMachine',
  'Datastore',
  'Network',
  'ResourcePool',
];

export const vmPaths = [
  'name',
  'parent',
  'runtime.host',
  'runtime.powerState',
  'config.hardware.numCPU',
  'config.hardware.memoryMB',
  'config.uuid',
  'config.instanceUuid',
  'config.guestId',
  'config.guestFullName',
  'config.annotation',
  'config.template',
  'config.changeVersion',
  'guest.toolsRunningStatus',
  'guest.ipAddress',
  'summary.storage.committed',
  'datastore',
  'network',
  'resourcePool',
  'customValue',
];

/**
 * What the change feed follows of every VM (one filter of its own): the paths that change often
 * and must show within a second (power, host, name), and `config.changeVersion`, which vCenter
 * bumps with every configuration change. When one of them changes, the feed reads that VM's
 * `vmPaths` again; the rest of the VM's facts are not followed path by path (see decision 19).
 */
export const vmTriggerPaths = [
  'name',
  'runtime.host',
  'runtime.powerState',
  'config.changeVersion',
];

export const propertySpecs: PropertySpec[] = [
  { type: 'Folder', pathSet: ['name', 'parent'] },
  { type: 'Datacenter', pathSet: ['name', 'parent'] },
  { type: 'ComputeResource', pathSet: ['name', 'parent'] },
  {
    type: 'ClusterComputeResource',
    // configurationEx whole: its HA part (dasConfig, dasVmConfig) exists only on the subtype
    // ClusterConfigInfoEx, so a path into it is not one every server accepts.
    pathSet: ['summary.numHosts', 'summary.numCpuCores', 'summary.totalMemory', 'configurationEx'],
  },
  {
    type: 'HostSystem',
    pathSet: [
      'name',
      'parent',
      'summary.hardware.numCpuCores',
      'summary.hardware.cpuMhz',
      'summary.hardware.cpuModel',
      'summary.hardware.memorySize',
      'summary.config.product.fullName',
      'runtime.connectionState',
      'runtime.powerState',
      'runtime.inMaintenanceMode',
      'runtime.dasHostState',
      'customValue',
    ],
  },
  { type: 'VirtualMachine', pathSet: vmPaths },
  {
    type: 'Datastore',
    pathSet: [
      'name',
      'parent',
      'summary.capacity',
      'summary.freeSpace',
      'summary.type',
      'summary.accessible',
    ],
  },
  { type: 'Network', pathSet: ['name', 'parent'] },
  { type: 'ResourcePool', pathSet: ['name', 'parent', 'owner'] },
];

/** The types of the view the feed follows for everything but VMs. */
export const nonVmViewTypes = viewTypes.filter((t) => t !== 'VirtualMachine');

/** What the feed follows of the objects that are not VMs: every path discovery reads. */
export const nonVmPropertySpecs = propertySpecs.filter((p) => p.type !== 'VirtualMachine');

/** The facts every vSphere object carries: its family and its managed object reference. */
function vsphereIdentity(self: MoRef): Facts {
  return { 'hypervisor.type': 'vsphere', 'vsphere.moref': self.value };
}

export interface CachedObject {
  ref: MoRef;
  props: Map<string, VimValue>;
}

const powerStates: Record<string, PowerState> = {
  poweredOn: 'running',
  poweredOff: 'stopped',
  suspended: 'suspended',
};

export function powerStateOf(value: VimValue | undefined): PowerState {
  return powerStates[str(value) ?? ''] ?? 'unknown';
}

/** Custom attribute keys → names (from the CustomFieldsManager's `field`). */
export type CustomFieldNames = Map<string, string>;

export class InventoryCache {
  readonly objects = new Map<string, CachedObject>();
  customFields: CustomFieldNames = new Map();

  clear(): void {
    this.objects.clear();
  }

  put(ref: MoRef, props: Map<string, VimValue>): void {
    this.objects.set(ref.value, { ref, props });
  }

  get(value: string): CachedObject | undefined {
    return this.objects.get(value);
  }

  /** The Zenith object for a cached one, or null for types Zenith does not show (folders, compute resources). */
  toDiscovered(object: CachedObject): DiscoveredObject | null {
    const { ref: self, props } = object;
    const name = str(props.get('name')) ?? self.value;
    const base = { externalId: self.value, name, tags: [] as string[] };
    switch (self.type) {
      case 'Datacenter':
        return {
          ...base,
          kind: 'datacenter',
          parent: null,
          facts: vsphereIdentity(self),
        };
      case 'ClusterComputeResource':
        return {
          ...base,
          kind: 'cluster',
          parent: this.#datacenterRef(self),
          facts: compact({
            ...vsphereIdentity(self),
            'cluster.hosts': num(props.get('summary.numHosts')),
            'cpu.cores': num(props.get('summary.numCpuCores')),
            'memory.totalBytes': num(props.get('summary.totalMemory')),
            ...clusterHaFacts(props.get('configurationEx'), (moref) => this.#nameOf(moref)),
          }),
        };
      case 'HostSystem':
        return {
          ...base,
          kind: 'host',
          parent: this.#hostParent(props.get('parent')),
          facts: compact({
            ...vsphereIdentity(self),
            'cpu.cores': num(props.get('summary.hardware.numCpuCores')),
            'cpu.mhz': num(props.get('summary.hardware.cpuMhz')),
            'cpu.model': str(props.get('summary.hardware.cpuModel')),
            'memory.totalBytes': num(props.get('summary.hardware.memorySize')),
            'hypervisor.version': str(props.get('summary.config.product.fullName')),
            'host.state': str(props.get('runtime.connectionState')),
            'host.powerState': str(props.get('runtime.powerState')),
            'host.maintenance': bool(props.get('runtime.inMaintenanceMode')),
            ...hostHaFacts(props.get('runtime.dasHostState')),
            ...this.#customFacts(props.get('customValue')),
          }),
        };
      case 'VirtualMachine':
        return this.toVm(object);
      case 'Datastore':
        return {
          ...base,
          kind: 'datastore',
          parent: this.#datacenterRef(self),
          facts: compact({
            ...vsphereIdentity(self),
            'storage.capacityBytes': num(props.get('summary.capacity')),
            'storage.freeBytes': num(props.get('summary.freeSpace')),
            'storage.type': str(props.get('summary.type')),
            'storage.accessible': bool(props.get('summary.accessible')),
          }),
        };
      case 'Network':
      case 'DistributedVirtualPortgroup':
      case 'OpaqueNetwork':
        return {
          ...base,
          kind: 'network',
          parent: this.#datacenterRef(self),
          facts: {
            ...vsphereIdentity(self),
            'network.type': self.type,
          },
        };
      case 'ResourcePool':
      case 'VirtualApp': {
        const owner = ref(props.get('owner'));
        const ownerKind = owner?.type === 'ClusterComputeResource' ? 'cluster' : null;
        return {
          ...base,
          kind: 'resourceGroup',
          parent:
            ownerKind && owner
              ? { kind: ownerKind, externalId: owner.value }
              : this.#datacenterRef(self),
          facts: {
            ...vsphereIdentity(self),
            'vsphere.type': self.type,
            'vsphere.root':
              ref(props.get('parent'))?.type !== 'ResourcePool' &&
              ref(props.get('parent'))?.type !== 'VirtualApp',
          },
        };
      }
      default:
        return null;
    }
  }

  toVm(object: CachedObject): DiscoveredVm {
    const { ref: self, props } = object;
    const host = ref(props.get('runtime.host'));
    const powerState = powerStateOf(props.get('runtime.powerState'));
    const memoryMb = num(props.get('config.hardware.memoryMB'));
    const names = (values: VimValue | undefined) =>
      refs(values).map((r) => str(this.objects.get(r.value)?.props.get('name')) ?? r.value);
    const pool = ref(props.get('resourcePool'));
    return {
      kind: 'vm',
      externalId: self.value,
      name: str(props.get('name')) ?? self.value,
      parent: host ? { kind: 'host', externalId: host.value } : this.#datacenterRef(self),
      hostExternalId: host?.value ?? null,
      powerState,
      tags: [],
      facts: compact({
        ...vsphereIdentity(self),
        'power.state': powerState,
        'cpu.count': num(props.get('config.hardware.numCPU')),
        'memory.bytes': memoryMb === undefined ? undefined : memoryMb * 1024 * 1024,
        'vm.uuid': str(props.get('config.uuid')),
        'vm.instanceUuid': str(props.get('config.instanceUuid')),
        'vm.template': bool(props.get('config.template')) ?? false,
        'vm.annotation': str(props.get('config.annotation')) ?? '',
        'guest.os': str(props.get('config.guestId')),
        'guest.osName': str(props.get('config.guestFullName')),
        'guest.ipAddress': str(props.get('guest.ipAddress')),
        'tools.status': toolsStatus(props.get('guest.toolsRunningStatus')),
        'disk.committedBytes': num(props.get('summary.storage.committed')),
        'storage.datastores': names(props.get('datastore')),
        'network.names': names(props.get('network')),
        'vsphere.resourcePool': pool
          ? (str(this.objects.get(pool.value)?.props.get('name')) ?? pool.value)
          : undefined,
        'vsphere.resourcePoolId': pool?.value,
        ...vmHaFacts(this.#haOverridesOf(host?.value)?.get(self.value)),
        ...this.#customFacts(props.get('customValue')),
      }),
    };
  }

  /** Every object Zenith shows, in the order the inventory wants (parents first is done by the inventory). */
  snapshot(): DiscoveredObject[] {
    const out: DiscoveredObject[] = [];
    for (const object of this.objects.values()) {
      const discovered = this.toDiscovered(object);
      if (discovered) out.push(discovered);
    }
    return out;
  }

  /** The datacenter above an object, found through the parent chain. */
  datacenterOf(value: string): string | null {
    let current = this.objects.get(value);
    for (let depth = 0; current && depth < 64; depth++) {
      if (current.ref.type === 'Datacenter') return current.ref.value;
      const up = ref(current.props.get('parent')) ?? ref(current.props.get('owner'));
      current = up ? this.objects.get(up.value) : undefined;
    }
    return null;
  }

  #nameOf(value: string): string {
    return str(this.objects.get(value)?.props.get('name')) ?? value;
  }

  /** The VM HA overrides of a host's cluster (none for a standalone host). */
  #haOverridesOf(hostValue: string | undefined) {
    const parent = hostValue ? ref(this.objects.get(hostValue)?.props.get('parent')) : undefined;
    if (parent?.type !== 'ClusterComputeResource') return undefined;
    return vmHaOverrides(this.objects.get(parent.value)?.props.get('configurationEx'));
  }

  #datacenterRef(self: MoRef): ExternalRef | null {
    const dc = this.datacenterOf(self.value);
    return dc && dc !== self.value ? { kind: 'datacenter', externalId: dc } : null;
  }

  /** A host's parent: its cluster, or the datacenter of a standalone host's compute resource. */
  #hostParent(parent: VimValue | undefined): ExternalRef | null {
    const compute = ref(parent);
    if (!compute) return null;
    if (compute.type === 'ClusterComputeResource')
      return { kind: 'cluster', externalId: compute.value };
    const dc = this.datacenterOf(compute.value);
    return dc ? { kind: 'datacenter', externalId: dc } : null;
  }

  #customFacts(values: VimValue | undefined): Facts {
    const facts: Facts = {};
    for (const item of list(values)) {
      const value = obj(item);
      const key = str(value?.key);
      if (!value || key === undefined) continue;
      const name = this.customFields.get(key) ?? key;
      facts[`custom.${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}`] = str(value.value) ?? '';
    }
    return facts;
  }
}

const toolsStates: Record<string, string> = {
  guestToolsRunning: 'running',
  guestToolsNotRunning: 'notRunning',
  guestToolsExecutingScripts: 'starting',
};

function toolsStatus(value: VimValue | undefined): string | undefined {
  const text = str(value);
  return text === undefined ? undefined : (toolsStates[text] ?? text);
}

function compact(facts: Record<string, Facts[string] | undefined>): Facts {
  const out: Facts = {};
  for (const [key, value] of Object.entries(facts)) if (value !== undefined) out[key] = value;
  return out;
}

/** Applies one property change to cached properties (partialUpdates off: whole values). */
export function applyChange(
  props: Map<string, VimValue>,
  change: { name: string; op: string; val: VimValue | undefined },
): void {
  if (change.op === 'remove' || change.op === 'indirectRemove' || change.val === undefined)
    props.delete(change.name);
  else props.set(change.name, change.val);
}
