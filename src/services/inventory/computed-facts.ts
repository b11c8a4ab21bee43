/**
 * The facts Zenith derives and keeps in the index (never stored): a VM's
 * location.* and its UUID conflicts, a host's VM counts and allocations with
 * the facts other services lay over it (a maintenance mode).
 */
import type { InventoryIndex } from './inventory-index.js';
import type { Facts, ManagedObject } from './model.js';

export interface ComputedFactSources {
  index: InventoryIndex;
  /** The host a VM's open location interval is on. */
  hostOf(vmId: string): string | null | undefined;
  /** Facts a service keeps on an object, shown among the computed ones. */
  overlay(id: string): Facts | undefined;
}

/**
 * Derives again the computed facts of the changed objects and of what they touch: the hosts they
 * are on (and were on: `previousParents`), and the VMs sharing a UUID with a changed VM.
 */
export function recomputeFacts(
  sources: ComputedFactSources,
  changed: ManagedObject[],
  previousParents: Set<string> = new Set(),
): void {
  const { index } = sources;
  const hosts = new Set<string>(previousParents);
  // A VM whose UUID twin came or went shows the conflict (or its end) too.
  const vms = new Map<string, ManagedObject>();
  for (const object of changed) {
    if (object.kind !== 'vm') continue;
    vms.set(object.id, object);
    const uuid = object.facts['vm.uuid'];
    if (typeof uuid === 'string' && uuid !== '')
      for (const twin of index.withFact('vm.uuid', uuid))
        if (twin.kind === 'vm') vms.set(twin.id, twin);
  }
  for (const object of changed) if (object.kind === 'host') hosts.add(object.id);
  for (const object of vms.values()) {
    const hostId = sources.hostOf(object.id) ?? null;
    const host = hostId ? index.get(hostId) : undefined;
    const cluster = host?.parentId ? index.get(host.parentId) : undefined;
    const datacenter = cluster?.parentId ? index.get(cluster.parentId) : undefined;
    const computed: Facts = {
      'location.hostId': hostId,
      'location.hostName': host?.name ?? null,
      'location.clusterId': cluster?.kind === 'cluster' ? cluster.id : null,
      'location.datacenterId':
        datacenter?.kind === 'datacenter'
          ? datacenter.id
          : cluster?.kind === 'datacenter'
            ? cluster.id
            : null,
    };
    const twins = uuidTwins(index, index.get(object.id) ?? object);
    if (twins.length > 0) computed['vm.uuidConflict'] = twins.map((twin) => twin.id);
    index.put({ ...index.get(object.id)!, computed });
    if (hostId) hosts.add(hostId);
  }
  for (const hostId of hosts) {
    const host = index.get(hostId);
    if (host?.kind !== 'host') continue;
    const vms = index.children(hostId).filter((vm) => vm.kind === 'vm' && vm.status === 'present');
    const running = vms.filter((vm) => vm.facts['power.state'] === 'running');
    const sum = (key: string) =>
      running.reduce(
        (total, vm) => total + (typeof vm.facts[key] === 'number' ? vm.facts[key] : 0),
        0,
      );
    index.put({
      ...host,
      computed: {
        'vms.total': vms.length,
        'vms.running': running.length,
        'cpu.allocated': sum('cpu.count'),
        'memory.allocatedBytes': sum('memory.bytes'),
        ...sources.overlay(hostId),
      },
    });
  }
}

/** Present VMs of other connections with the same UUID as this one (none for a missing VM). */
function uuidTwins(index: InventoryIndex, vm: ManagedObject): ManagedObject[] {
  const uuid = vm.facts['vm.uuid'];
  if (typeof uuid !== 'string' || uuid === '' || vm.status !== 'present') return [];
  return index
    .withFact('vm.uuid', uuid)
    .filter((other) => other.id !== vm.id && other.kind === 'vm' && other.status === 'present');
}
