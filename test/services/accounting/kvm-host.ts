/**
 * The fleet the accounting tests meter, as a driver reports it: one KVM host `h` (under a cluster
 * when given one) and running VMs on it with the sizes each test needs.
 */
import type { DiscoveredObject, DiscoveredVm } from '../../../src/hypervisors/driver.js';

const GiB = 2 ** 30;

export function kvmHost(cluster?: string): DiscoveredObject {
  return {
    kind: 'host',
    externalId: 'h',
    name: 'h',
    parent: cluster ? { kind: 'cluster', externalId: cluster } : null,
    facts: { 'hypervisor.type': 'kvm' },
  };
}

/** A VM running on host `h`: `cpus` vCPUs, `memoryGiB` of memory, and a disk when `diskGiB` is given. */
export function runningVm(
  name: string,
  size: { cpus: number; memoryGiB: number; diskGiB?: number },
): DiscoveredVm {
  return {
    kind: 'vm',
    externalId: name,
    name,
    parent: { kind: 'host', externalId: 'h' },
    hostExternalId: 'h',
    powerState: 'running',
    facts: {
      'power.state': 'running',
      'cpu.count': size.cpus,
      'memory.bytes': size.memoryGiB * GiB,
      ...(size.diskGiB !== undefined ? { 'disk.totalBytes': size.diskGiB * GiB } : {}),
    },
  };
}
