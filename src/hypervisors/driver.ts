import type { Duplex } from 'node:stream';
import { ZenithError } from '../core/errors.js';
import type {
  ActionContext,
  CloneOptions,
  ConsoleKind,
  DiscoveredVm,
  DiscoverySnapshot,
  InventoryDelta,
  MigrateOptions,
  ReconfigureOptions,
  SnapshotInfo,
  VmFootprint,
  VmMetrics,
  VmSpec,
} from './driver-types.js';
import type { DiskStreamFacet } from './facets/disk-streams.js';
import type { GuestAgentFacet } from './facets/guest-agent.js';
import type { LivenessFacet } from './facets/liveness.js';
import type { MachineFacet } from './facets/machine-power.js';
import type { MigrationEndpoint } from './facets/migration-endpoint.js';
import type { PortableVmFacet } from './facets/portable-vm.js';
import type { StorageScanFacet } from './facets/storage-scan.js';
import type { SyncReplicationFacet } from './facets/sync-replication.js';

/**
 * The one interface every hypervisor family implements. A driver speaks in
 * the peer's own ids (external ids); the inventory service maps them to
 * Zenith ids. Capabilities are declared, never assumed: the API refuses an
 * operation a driver does not list with ZEN_UNSUPPORTED.
 *
 * Operations that take two hosts, or a VM and something outside its host,
 * are facets: optional, declared, each with one meaning for every family.
 * Services ask for a facet by name (facetOf, requireFacet), never for a
 * driver's class.
 */

export * from './driver-types.js';
export type * from './facets/disk-streams.js';
export {
  checkpointTagged,
  MAX_DATA_EXTENTS,
  REPLICA_CHECKPOINT_TAG,
} from './facets/disk-streams.js';
export type * from './facets/guest-agent.js';
export type * from './facets/liveness.js';
export * from './facets/machine-power.js';
export type * from './facets/migration-endpoint.js';
export type * from './facets/portable-vm.js';
export type * from './facets/storage-scan.js';
export type * from './facets/sync-replication.js';

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
  | 'vm.reconfigure'
  /** A physical machine's power through its BMC (on, shutdown, off, cycle, reset). */
  | 'machine.power'
  /** A one-time boot device. */
  | 'machine.boot'
  /** Virtual media (an ISO by URL) inserted and ejected. */
  | 'machine.media'
  /** The identify light. */
  | 'machine.identify'
  /** Power off confirmed by reading it back (high availability fences failed hosts with it). */
  | 'machine.fence';

/** Power actions and deletion of a VM: what every family but libvirt (which has no reset) offers. */
export const vmPowerCapabilities = [
  'vm.start',
  'vm.stop',
  'vm.shutdown',
  'vm.reboot',
  'vm.reset',
  'vm.suspend',
  'vm.resume',
  'vm.delete',
] as const satisfies readonly Capability[];

/** The facets a driver may declare, by name. */
export interface DriverFacets {
  /** One end of a migration between hosts of different connections. */
  migration: MigrationEndpoint;
  /** Describe a VM portably; run one here from such a description with its existing disks. */
  portableVms: PortableVmFacet;
  /** Read a disk (whole, or its changed extents) and write one, as extents of bytes. */
  diskStreams: DiskStreamFacet;
  /** Power, boot device, media, identify light, sensors and fencing of the machines it discovers. */
  machine: MachineFacet;
  /** How long the channel to its one host has been silent (high availability's signal). */
  liveness: LivenessFacet;
  /** Whether a VM's guest agent answers (what "up" means for a guest that runs one). */
  guestAgent: GuestAgentFacet;
  /** Both ends of synchronous replication: a replica on the recovery host, a VM's disk mirrored into it. */
  syncReplication: SyncReplicationFacet;
  /** The images in the host's storage, found by their headers, with each disk's owner. */
  storageScan: StorageScanFacet;
}

export type FacetName = keyof DriverFacets;

export interface DriverInfo {
  /** Family, e.g. simulated, qemu, libvirt, vsphere. */
  type: string;
  /** True for drivers that pretend: shown wherever their objects appear. */
  simulated: boolean;
  capabilities: readonly Capability[];
}

export interface HypervisorDriver {
  readonly info: DriverInfo;
  /**
   * The facets this driver has now (an agent's depend on the protocol version it speaks). Read
   * through facetOf/requireFacet.
   */
  readonly facets?: Partial<DriverFacets>;
  /**
   * Why a facet this family can have is absent now (an agent that is not connected, or speaks an
   * older protocol); undefined when there is no more to say than that the family lacks it.
   * requireFacet refuses with it; `purpose` says what the caller wanted the facet for.
   */
  facetRefusal?(name: FacetName, purpose: string): ZenithError | undefined;
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

/** The driver's facet of that name, or undefined when it does not have it. */
export function facetOf<N extends FacetName>(
  driver: HypervisorDriver,
  name: N,
): DriverFacets[N] | undefined {
  return driver.facets?.[name];
}

/**
 * The driver's facet of that name; when it has none, the driver's reason (facetRefusal) or
 * ZEN_UNSUPPORTED, saying what needed it.
 */
export function requireFacet<N extends FacetName>(
  driver: HypervisorDriver,
  name: N,
  purpose: string,
): DriverFacets[N] {
  const facet = facetOf(driver, name);
  if (!facet)
    throw (
      driver.facetRefusal?.(name, purpose) ??
      new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections cannot ${purpose} (they have no '${name}' facet)`,
        { facet: name, type: driver.info.type },
      )
    );
  return facet;
}
