/**
 * libvirt objects as Zenith inventory objects with facts: the host (node info
 * and capabilities), domains → VMs, networks, storage pools → datastores.
 * External ids are libvirt UUIDs, so a VM keeps its identity when it moves to
 * another libvirt host (the inventory re-homes it by `vm.uuid`).
 */
import type { TypedParam } from '../../protocols/libvirt/remote-types.js';
import { typedParamNumber } from '../../protocols/libvirt/remote-types.js';
import { vmOnHost, type DiscoveredObject, type DiscoveredVm, type Facts } from '../driver.js';
import type { DomainDescription } from './domain-xml.js';
import type { DomainPower } from './domain-state.js';
import type { HostCapabilities, NetworkDescription, PoolDescription } from './host-xml.js';

export interface LibvirtHost {
  externalId: string;
  name: string;
  /** Lower-case driver name as the daemon reports it: qemu, test, lxc, xen … */
  driver: string;
  uri: string;
  hypervisorVersion: string;
  libvirtVersion: string;
  node: {
    model: string;
    memoryKiB: number;
    cpus: number;
    mhz: number;
    nodes: number;
    sockets: number;
    cores: number;
    threads: number;
  };
  capabilities: HostCapabilities;
}

/** libvirt's versions are major * 1,000,000 + minor * 1,000 + release. */
export function versionText(encoded: number | bigint): string {
  const value = Number(encoded);
  return `${Math.floor(value / 1_000_000)}.${Math.floor(value / 1000) % 1000}.${value % 1000}`;
}

export function hypervisorType(host: LibvirtHost): string {
  return `libvirt-${host.driver}`;
}

export function hostObject(host: LibvirtHost): DiscoveredObject {
  const caps = host.capabilities;
  return {
    kind: 'host',
    externalId: host.externalId,
    name: host.name,
    parent: null,
    facts: {
      'hypervisor.type': hypervisorType(host),
      'hypervisor.version': host.hypervisorVersion,
      'libvirt.version': host.libvirtVersion,
      'libvirt.uri': host.uri,
      'libvirt.driver': host.driver,
      'host.state': 'connected',
      'host.uuid': caps.uuid,
      'cpu.cores': host.node.cpus,
      'cpu.model': caps.cpuModel ?? host.node.model,
      'cpu.vendor': caps.cpuVendor,
      'cpu.arch': caps.arch ?? host.node.model,
      'cpu.mhz': host.node.mhz,
      'cpu.sockets': host.node.sockets,
      'cpu.threadsPerCore': host.node.threads,
      'numa.nodes': host.node.nodes,
      'memory.totalBytes': host.node.memoryKiB * 1024,
      'libvirt.domainTypes': caps.domainTypes,
      'accelerator.kvmAvailable': caps.domainTypes.includes('kvm'),
    },
  };
}

export interface DomainReading {
  description: DomainDescription | null;
  /** Why the description could not be read (a hostile or broken XML), when it could not. */
  descriptionError: string | null;
  name: string;
  uuid: string;
  /** The domain id while it runs. */
  id: number;
  power: DomainPower;
  stats: readonly TypedParam[];
}

/** Capacity of the disks (from block stats, where the hypervisor reports them). */
function diskCapacity(stats: readonly TypedParam[]): number | null {
  const count = typedParamNumber(stats, 'block.count');
  if (count === undefined) return null;
  let total = 0;
  for (let i = 0; i < count; i++) total += typedParamNumber(stats, `block.${i}.capacity`) ?? 0;
  return total;
}

export function vmObject(host: LibvirtHost, domain: DomainReading): DiscoveredVm {
  const d = domain.description;
  const balloonKiB = typedParamNumber(domain.stats, 'balloon.current');
  const facts: Facts = {
    'hypervisor.type': hypervisorType(host),
    'vm.uuid': domain.uuid,
    'libvirt.domainName': domain.name,
    'libvirt.domainId': domain.id > 0 ? domain.id : null,
    'power.state': domain.power.powerState,
    'power.reason': domain.power.reason,
    'power.stopCause': domain.power.stopCause,
    'vm.createdBy': d?.zenith ? 'zenith' : 'outside',
  };
  if (d) {
    Object.assign(facts, {
      'libvirt.domainType': d.type,
      'vm.title': d.title,
      'cpu.count': d.vcpus,
      'memory.bytes': d.memoryBytes,
      'memory.currentBytes': balloonKiB !== undefined ? balloonKiB * 1024 : d.currentMemoryBytes,
      'os.type': d.osType,
      'cpu.arch': d.arch,
      'machine.type': d.machine,
      'boot.kind': d.bootKind,
      'disk.count': d.disks.filter((disk) => disk.device === 'disk').length,
      'disk.totalBytes': diskCapacity(domain.stats),
      'disk.sources': d.disks.map((disk) => disk.source).filter((s): s is string => s !== null),
      'network.macs': d.interfaces.map((nic) => nic.mac).filter((m): m is string => m !== null),
      'network.attachedTo': d.interfaces
        .map((nic) => nic.source)
        .filter((s): s is string => s !== null),
      'console.serial': d.serialConsole,
      'console.graphics': d.graphics,
    } satisfies Facts);
  } else {
    facts['libvirt.descriptionError'] = domain.descriptionError;
  }
  return vmOnHost(host.externalId, {
    externalId: domain.uuid,
    name: domain.name,
    powerState: domain.power.powerState,
    facts,
  });
}

export function networkObject(
  host: LibvirtHost,
  network: NetworkDescription,
  active: boolean,
): DiscoveredObject {
  return {
    kind: 'network',
    externalId: network.uuid,
    name: network.name,
    // Networks are discovered before hosts in a snapshot, so a host cannot be their parent; the fact names it.
    parent: null,
    facts: {
      'hypervisor.type': hypervisorType(host),
      'libvirt.host': host.name,
      'network.active': active,
      'network.forwardMode': network.forwardMode,
      'network.bridge': network.bridge,
      'network.addresses': network.addresses,
    },
  };
}

export function datastoreObject(
  host: LibvirtHost,
  pool: PoolDescription,
  active: boolean,
): DiscoveredObject {
  return {
    kind: 'datastore',
    externalId: pool.uuid,
    name: pool.name,
    parent: null,
    facts: {
      'hypervisor.type': hypervisorType(host),
      'libvirt.host': host.name,
      'storage.type': pool.type,
      'storage.path': pool.targetPath,
      'storage.active': active,
      'storage.capacityBytes': pool.capacityBytes,
      'storage.allocatedBytes': pool.allocationBytes,
      'storage.freeBytes': pool.availableBytes,
    },
  };
}
