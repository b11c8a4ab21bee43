/**
 * The deterministic fleet of the simulated driver: the same settings and seed
 * always give the same datacenters, clusters, hosts and VMs, with the same ids.
 */
import { vmOnHost, type DiscoveredObject, type DiscoveredVm, type PowerState } from '../driver.js';

export interface FleetSettings {
  seed: number;
  datacenters: number;
  clustersPerDatacenter: number;
  hostsPerCluster: number;
  vmsPerHost: number;
}

export const defaultFleet: FleetSettings = {
  seed: 1,
  datacenters: 1,
  clustersPerDatacenter: 2,
  hostsPerCluster: 3,
  vmsPerHost: 4,
};

export interface SimHost {
  externalId: string;
  name: string;
  clusterExternalId: string;
  cpuCores: number;
  memoryBytes: number;
  costPerHour: number;
}

export interface SimVm {
  externalId: string;
  name: string;
  hostExternalId: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  powerState: PowerState;
  tags: string[];
  guestOs: string;
  createdBy: 'fleet' | 'zenith';
  /** Memory the guest rewrites per second while it runs (what a live migration must re-send). */
  dirtyBytesPerSecond?: number;
  snapshots?: Array<{ id: string; name: string; createdAt: number; powerState: PowerState }>;
  /** Set on a linked clone: the VM whose disks it shares (which may not be deleted meanwhile). */
  linkedCloneOf?: string;
}

export interface SimFleet {
  others: DiscoveredObject[];
  hosts: Map<string, SimHost>;
  vms: Map<string, SimVm>;
}

const GiB = 1024 ** 3;
export const defaultDirtyBytesPerSecond = 8 * 1024 * 1024;

/** mulberry32: small, fast, deterministic. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

export function generateFleet(settings: FleetSettings): SimFleet {
  const random = seededRandom(settings.seed);
  const others: DiscoveredObject[] = [];
  const hosts = new Map<string, SimHost>();
  const vms = new Map<string, SimVm>();
  let vmNumber = 0;
  for (let d = 1; d <= settings.datacenters; d++) {
    const dc = `dc-${d}`;
    others.push({
      kind: 'datacenter',
      externalId: dc,
      name: `sim-dc${d}`,
      parent: null,
      facts: { 'hypervisor.type': 'simulated' },
    });
    others.push({
      kind: 'network',
      externalId: `${dc}/net-prod`,
      name: `sim-dc${d}-prod`,
      parent: { kind: 'datacenter', externalId: dc },
      facts: { 'network.vlan': 100 },
    });
    others.push({
      kind: 'datastore',
      externalId: `${dc}/ds-1`,
      name: `sim-dc${d}-ds1`,
      parent: { kind: 'datacenter', externalId: dc },
      facts: { 'storage.capacityBytes': 100 * 1024 * GiB, 'storage.type': 'shared' },
    });
    for (let c = 1; c <= settings.clustersPerDatacenter; c++) {
      const cluster = `${dc}/cl-${c}`;
      others.push({
        kind: 'cluster',
        externalId: cluster,
        name: `sim-dc${d}-cl${c}`,
        parent: { kind: 'datacenter', externalId: dc },
        facts: {},
      });
      for (let h = 1; h <= settings.hostsPerCluster; h++) {
        const hostId = `${cluster}/h-${h}`;
        const big = random() < 0.5;
        hosts.set(hostId, {
          externalId: hostId,
          name: `sim-dc${d}-cl${c}-h${h}`,
          clusterExternalId: cluster,
          cpuCores: big ? 64 : 32,
          memoryBytes: (big ? 512 : 256) * GiB,
          costPerHour: big ? 1.2 : 0.7,
        });
        for (let v = 1; v <= settings.vmsPerHost; v++) {
          vmNumber++;
          const vmId = `vm-${vmNumber}`;
          const roll = random();
          vms.set(vmId, {
            externalId: vmId,
            name: `sim-vm-${String(vmNumber).padStart(5, '0')}`,
            hostExternalId: hostId,
            cpus: pick(random, [1, 2, 2, 4, 4, 8]),
            memoryBytes: pick(random, [1, 2, 4, 4, 8, 16]) * GiB,
            diskBytes: pick(random, [20, 40, 80, 160]) * GiB,
            powerState: roll < 0.75 ? 'running' : roll < 0.9 ? 'stopped' : 'suspended',
            tags: [
              pick(random, ['env:prod', 'env:prod', 'env:dev', 'env:test']),
              pick(random, ['tier:web', 'tier:db', 'tier:batch']),
            ],
            guestOs: pick(random, ['debian12', 'ubuntu24.04', 'rhel9', 'windows2022']),
            createdBy: 'fleet',
            // From the VM's number, not the random stream, so that the rest of the fleet stays as it was.
            dirtyBytesPerSecond: [4, 8, 16, 32][vmNumber % 4]! * 1024 * 1024,
          });
        }
      }
    }
  }
  return { others, hosts, vms };
}

export function hostObject(host: SimHost): DiscoveredObject {
  return {
    kind: 'host',
    externalId: host.externalId,
    name: host.name,
    parent: { kind: 'cluster', externalId: host.clusterExternalId },
    facts: {
      'hypervisor.type': 'simulated',
      'host.simulated': true,
      'cpu.cores': host.cpuCores,
      'memory.totalBytes': host.memoryBytes,
      'cost.perHour': host.costPerHour,
      'host.state': 'connected',
    },
  };
}

export function vmObject(vm: SimVm): DiscoveredVm {
  return vmOnHost(vm.hostExternalId, {
    externalId: vm.externalId,
    name: vm.name,
    powerState: vm.powerState,
    tags: vm.tags,
    facts: {
      'hypervisor.type': 'simulated',
      'vm.simulated': true,
      'cpu.count': vm.cpus,
      'memory.bytes': vm.memoryBytes,
      'disk.totalBytes': vm.diskBytes,
      'power.state': vm.powerState,
      'guest.os': vm.guestOs,
      'snapshot.count': vm.snapshots?.length ?? 0,
      'memory.dirtyBytesPerSecond': vm.dirtyBytesPerSecond ?? defaultDirtyBytesPerSecond,
    },
  });
}
