/**
 * vSphere HA as Zenith shows it. On vSphere, vCenter's HA watches the hosts and restarts the VMs;
 * Zenith runs none of its own there (no watch, no failover, no admission control, no what-if) and
 * reads vSphere HA's configuration and state from the facts the vsphere driver sets:
 * `ha.vsphere.*` on clusters (configuration), hosts (`ha.vsphere.hostState`) and VMs (their own
 * restart priority and isolation response).
 */
import type { VsphereHaClusterView } from '../../api/ha.js';
import type { ManagedObject } from '../inventory/model.js';
import type { InventoryIndex } from '../inventory/inventory-index.js';

/** A host Zenith's HA leaves to vSphere (any vSphere host, clustered or standalone). */
export function isVsphereHost(host: ManagedObject): boolean {
  return host.facts['hypervisor.type'] === 'vsphere';
}

/** How a vSphere host stands with vSphere HA. */
export interface VsphereHostHa {
  cluster: ManagedObject | undefined;
  /** vSphere HA is on in its cluster. */
  enabled: boolean;
  /** Its state as vSphere HA reports it (null: not configured on it). */
  state: string | null;
  /** Why Zenith does not protect it, in words. */
  reason: string;
}

export function vsphereHaOfHost(
  host: ManagedObject,
  cluster: ManagedObject | undefined,
): VsphereHostHa {
  const state = text(host.facts['ha.vsphere.hostState']);
  const clustered = cluster?.facts['hypervisor.type'] === 'vsphere' ? cluster : undefined;
  const enabled = clustered?.facts['ha.vsphere.enabled'] === true;
  const reason = !clustered
    ? "a standalone vSphere host: no vSphere HA, and Zenith's HA does not act on vSphere hosts"
    : enabled
      ? `protected by vSphere HA (cluster ${clustered.name}${state ? `, ${state}` : ''}); Zenith's HA does not act on vSphere hosts`
      : `vSphere HA is off in cluster ${clustered.name}; Zenith's HA does not act on vSphere hosts`;
  return { cluster: clustered, enabled, state, reason };
}

/** A VM's restart priority under vSphere HA: its own, else its cluster's default, else vSphere's. */
export function vsphereRestartPriority(
  vm: ManagedObject,
  cluster: ManagedObject | undefined,
): string {
  const own = text(vm.facts['ha.vsphere.restartPriority']);
  const fallback = text(cluster?.facts['ha.vsphere.restartPriority']) ?? 'medium';
  return own && own !== 'clusterRestartPriority' ? own : fallback;
}

/** Every vSphere cluster `visible` says the caller may read, with its HA and its hosts' states. */
export function vsphereHaClusters(
  index: InventoryIndex,
  visible: (id: string) => boolean,
): VsphereHaClusterView[] {
  const out: VsphereHaClusterView[] = [];
  for (const cluster of index.ofKind('cluster')) {
    const facts = cluster.facts;
    if (facts['hypervisor.type'] !== 'vsphere' || cluster.status !== 'present') continue;
    if (!visible(cluster.id)) continue;
    const hosts = index
      .children(cluster.id)
      .filter((h) => h.kind === 'host' && h.status === 'present' && visible(h.id))
      .map((h) => ({ hostId: h.id, name: h.name, state: text(h.facts['ha.vsphere.hostState']) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const failoverHosts = facts['ha.vsphere.failoverHosts'];
    out.push({
      clusterId: cluster.id,
      name: cluster.name,
      enabled: facts['ha.vsphere.enabled'] === true,
      hostMonitoring: text(facts['ha.vsphere.hostMonitoring']),
      vmMonitoring: text(facts['ha.vsphere.vmMonitoring']),
      admissionControl: {
        enabled: facts['ha.vsphere.admissionControl'] === true,
        policy: text(facts['ha.vsphere.admissionControlPolicy']),
        hostFailuresToTolerate: number(facts['ha.vsphere.hostFailuresToTolerate']),
        cpuFailoverPercent: number(facts['ha.vsphere.cpuFailoverPercent']),
        memoryFailoverPercent: number(facts['ha.vsphere.memoryFailoverPercent']),
        failoverHosts: Array.isArray(failoverHosts)
          ? failoverHosts.filter((h): h is string => typeof h === 'string')
          : [],
      },
      restartPriority: text(facts['ha.vsphere.restartPriority']),
      isolationResponse: text(facts['ha.vsphere.isolationResponse']),
      hosts,
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function number(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}
