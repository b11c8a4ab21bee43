import type { Duplex } from 'node:stream';

/**
 * The one interface every hypervisor family implements. A driver speaks in
 * the peer's own ids (external ids); the inventory service maps them to
 * Zenith ids. Capabilities are declared, never assumed: the API refuses an
 * operation a driver does not list with ZEN_UNSUPPORTED.
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

export function isDiscoveredVm(object: DiscoveredObject): object is DiscoveredVm {
  return object.kind === 'vm';
}

export interface DiscoverySnapshot {
  objects: DiscoveredObject[];
}

export type InventoryDelta =
  | { type: 'upsert'; object: DiscoveredObject }
  | { type: 'remove'; kind: ObjectKind; externalId: string };

export type Capability =
  | 'vm.start'
  | 'vm.stop'
  | 'vm.shutdown'
  | 'vm.reboot'
  | 'vm.reset'
  | 'vm.suspend'
  | 'vm.resume'
  | 'vm.delete'
  | 'vm.migrate'
  | 'vm.create'
  | 'vm.clone'
  | 'vm.snapshot'
  | 'vm.console'
  /** Move a VM's disks to another datastore (with or without another host). */
  | 'vm.relocateStorage'
  | 'vm.rename'
  /** Change a VM's CPU count and memory. */
  | 'vm.reconfigure';

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

export interface DriverInfo {
  /** Family, e.g. simulated, qemu, libvirt, vsphere. */
  type: string;
  /** True for drivers that pretend: shown wherever their objects appear. */
  simulated: boolean;
  capabilities: readonly Capability[];
}

export interface HypervisorDriver {
  readonly info: DriverInfo;
  /** Opens the connection to the peer; throws a coded error when it cannot. */
  connect(): Promise<void>;
  /**
   * Who the peer is, however it was addressed (valid after connect()): two connections with the
   * same identity reach the same hypervisor and would discover the same VMs, so the connection
   * service refuses the second. Absent where a driver cannot tell.
   */
  peerIdentity?(): string;
  /** A full inventory of what the peer knows. */
  discover(): Promise<DiscoverySnapshot>;
  /** Changes from the moment of this call (call it before discover()), until the signal aborts. */
  watch(signal: AbortSignal): AsyncIterable<InventoryDelta>;
  /** Each action resolves with the VM as it is afterwards (null once deleted). */
  startVm(vmExternalId: string, context: ActionContext): Promise<DiscoveredVm>;
  stopVm(
    vmExternalId: string,
    context: ActionContext,
    options?: { force?: boolean },
  ): Promise<DiscoveredVm>;
  rebootVm(vmExternalId: string, context: ActionContext): Promise<DiscoveredVm>;
  /** A hard reset (the reset button), also from suspended: present where it differs from reboot. */
  resetVm?(vmExternalId: string, context: ActionContext): Promise<DiscoveredVm>;
  suspendVm(vmExternalId: string, context: ActionContext): Promise<DiscoveredVm>;
  resumeVm(vmExternalId: string, context: ActionContext): Promise<DiscoveredVm>;
  deleteVm(vmExternalId: string, context: ActionContext): Promise<null>;
  migrateVm(
    vmExternalId: string,
    targetHostExternalId: string,
    context: ActionContext,
    options?: MigrateOptions,
  ): Promise<DiscoveredVm>;
  createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm>;
  /**
   * Checks a new VM's spec as createVm would, creating nothing, and answers what the VM will take
   * (its disks as the driver will make them: family options may set sizes the request does not
   * say). Quotas reserve this. Absent: the request's own figures are what it takes.
   */
  checkNewVm?(spec: VmSpec): Promise<VmFootprint>;
  /** Snapshots: present when the driver declares 'vm.snapshot'. */
  listSnapshots?(vmExternalId: string): Promise<SnapshotInfo[]>;
  createSnapshot?(
    vmExternalId: string,
    name: string,
    context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }>;
  revertSnapshot?(
    vmExternalId: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm>;
  deleteSnapshot?(
    vmExternalId: string,
    snapshotId: string,
    context: ActionContext,
  ): Promise<DiscoveredVm>;
  /** Counters of a running VM (null when it is not running); present where the driver can measure them. */
  vmMetrics?(vmExternalId: string): Promise<VmMetrics | null>;
  /**
   * A new VM like the source (same spec, new name, id and identity), stopped:
   * present when the driver declares 'vm.clone'. Refuses a taken name with
   * ZEN_CONFLICT before anything is created, and leaves nothing behind on failure.
   */
  cloneVm?(
    vmExternalId: string,
    options: CloneOptions,
    context: ActionContext,
  ): Promise<DiscoveredVm>;
  /** A new name for the VM: present with the 'vm.rename' capability. */
  renameVm?(vmExternalId: string, name: string, context: ActionContext): Promise<DiscoveredVm>;
  /** New CPU count and/or memory: present with the 'vm.reconfigure' capability. */
  reconfigureVm?(
    vmExternalId: string,
    change: ReconfigureOptions,
    context: ActionContext,
  ): Promise<DiscoveredVm>;
  /** A byte stream to the VM's serial console or VNC server: present with the 'vm.console' capability. */
  openConsole?(vmExternalId: string, kind: ConsoleKind): Promise<Duplex>;
  /** Releases every resource; the driver is unusable afterwards. */
  close(): Promise<void>;
}
