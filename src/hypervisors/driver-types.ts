/**
 * The shapes drivers speak in: what they discover, what actions take and answer. Family-neutral,
 * shared by the driver interface (driver.ts) and its facets (facets/).
 */

export type FactValue = string | number | boolean | string[] | null;
export type Facts = Record<string, FactValue>;

export type ObjectKind =
  'datacenter' | 'cluster' | 'host' | 'vm' | 'network' | 'datastore' | 'resourceGroup';
export const objectKinds: readonly ObjectKind[] = [
  'datacenter',
  'cluster',
  'host',
  'vm',
  'network',
  'datastore',
  'resourceGroup',
];

export type PowerState = 'running' | 'stopped' | 'suspended' | 'paused' | 'unknown';

/**
 * Why a stopped VM stopped, the fact `power.stopCause` (with `power.stoppedAt`, ISO 8601) of the
 * drivers that can tell; null while it runs or when the driver cannot tell. VM monitoring restarts
 * only `crashed` and `guest-panic` (docs/high-availability.md).
 * - requested: Zenith or a user turned it off (power-off, shutdown, an isolation response);
 * - guest-shutdown: the guest powered itself off;
 * - guest-panic: the guest's kernel panicked and said so (pvpanic), and the VM was powered off;
 * - crashed: its process died (killed with SIGKILL, out of memory, a QEMU crash) or was found gone;
 * - killed: a signal asked its process to quit on the host (SIGTERM/SIGINT/SIGHUP: an operator or
 *   the host shutting down), outside Zenith;
 * - fenced: high availability killed it (an agent fencing itself): it may run elsewhere now.
 */
export const stopCauses = [
  'requested',
  'guest-shutdown',
  'guest-panic',
  'crashed',
  'killed',
  'fenced',
] as const;
export type StopCause = (typeof stopCauses)[number];

export interface ExternalRef {
  kind: ObjectKind;
  externalId: string;
}

/** One object as the hypervisor reports it. */
export interface DiscoveredObject {
  kind: ObjectKind;
  externalId: string;
  name: string;
  parent: ExternalRef | null;
  facts: Facts;
  tags?: string[];
}

/** A VM also says where it runs and in which power state. */
export interface DiscoveredVm extends DiscoveredObject {
  kind: 'vm';
  hostExternalId: string | null;
  powerState: PowerState;
}

/** A VM discovered on a host: the host is also its parent in the inventory's tree. */
export function vmOnHost(
  hostExternalId: string,
  vm: Omit<DiscoveredVm, 'kind' | 'parent' | 'hostExternalId'>,
): DiscoveredVm {
  const { externalId, name, ...rest } = vm;
  return {
    kind: 'vm',
    externalId,
    name,
    parent: { kind: 'host', externalId: hostExternalId },
    hostExternalId,
    ...rest,
  };
}

export function isDiscoveredVm(object: DiscoveredObject): object is DiscoveredVm {
  return object.kind === 'vm';
}

export interface DiscoverySnapshot {
  objects: DiscoveredObject[];
}

export type InventoryDelta =
  | { type: 'upsert'; object: DiscoveredObject }
  | { type: 'remove'; kind: ObjectKind; externalId: string };

export interface ActionProgress {
  /** 0..100 */
  percent: number;
  message?: string;
  details?: Record<string, number | string>;
}

export interface ActionContext {
  signal: AbortSignal;
  progress(update: ActionProgress): void;
}

export interface MigrateOptions {
  /** Migrate the disks too (no shared storage). */
  withStorage?: boolean;
  maxBandwidthBytesPerSecond?: number;
  maxDowntimeMs?: number;
  /** Slow the guest's vCPUs down when memory is dirtied faster than it is sent, so the migration converges. */
  autoConverge?: boolean;
  /** Move the VM's disks to this datastore too (drivers with 'vm.relocateStorage'). */
  datastoreExternalId?: string;
}

export interface ReconfigureOptions {
  cpus?: number;
  memoryBytes?: number;
}

export interface VmSpec {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  hostExternalId: string;
  facts?: Facts;
  /** Family-specific settings (for QEMU: kernel, initrd, cmdline, baseImage, disks, nics, vnc, accelerator). */
  options?: Record<string, unknown>;
}

/** What a VM takes of a host: vCPUs, memory and the capacity of its disks. */
export interface VmFootprint {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
}

export interface CloneOptions {
  /** The clone's name; it must be free on the connection. */
  name: string;
  /**
   * Share the source's disks copy-on-write instead of copying them: fast and
   * small, but the clone depends on the source (see the driver's docs).
   */
  linked?: boolean;
}

export type ConsoleKind = 'serial' | 'vnc';

/** Counters of one running VM, as its hypervisor measures them (cumulative since the VM started). */
export interface VmMetrics {
  /** When these were read (ms since the epoch). */
  sampledAt: number;
  /** CPU time the VM's vCPUs and device emulation used. */
  cpuTimeMs: number;
  /** Host memory the VM occupies now (resident), and what it was given. */
  memoryUsedBytes: number;
  memoryConfiguredBytes: number;
  diskReadBytes: number;
  diskWriteBytes: number;
  diskReadOps: number;
  diskWriteOps: number;
  /**
   * Bytes the guest received and sent on its NICs (the guest's point of view). Null where no NIC
   * keeps counters the host can read (QEMU: a VM with user-mode NICs only; with both kinds, the
   * bridged NICs' bytes alone).
   */
  netRxBytes: number | null;
  netTxBytes: number | null;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  createdAt: number;
  /** The power state the VM returns to when reverted. */
  powerState: PowerState;
}
