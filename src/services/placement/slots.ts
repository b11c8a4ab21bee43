/** The slots a placement model is made of: one per host, one per VM. */
import type { ManagedObject } from '../inventory/model.js';
import type { CompiledPolicy, MigrationSettings } from '../policy/policy-document.js';
import type { FactSource } from '../policy/language/compiler.js';

/** bare-metal: a physical machine as its BMC sees it (VMs go to the hypervisor host linked to it, if any). */
export type HostPlacementState =
  'connected' | 'maintenance' | 'failed' | 'disconnected' | 'bare-metal' | 'standby';
/** standby: powered off by power management, powered on again when capacity is needed. */
export type HostMode = 'normal' | 'entering-maintenance' | 'maintenance' | 'standby';

export interface HostSlot {
  index: number;
  object: ManagedObject;
  id: string;
  name: string;
  connectionId: string | null;
  cluster: ManagedObject | undefined;
  datacenter: ManagedObject | undefined;
  state: HostPlacementState;
  mode: HostMode;
  /** What it can run: `hypervisor.vmTypes`, else its own `hypervisor.type`. */
  vmTypes: readonly string[];
  cpuCores: number;
  memoryBytes: number;
  cpuOvercommit: number;
  memoryOvercommit: number;
  cpuCapacity: number;
  memoryCapacity: number;
  cpuUsed: number;
  memoryUsed: number;
  costPerHour: number | null;
  migration: Required<MigrationSettings>;
  /** Enabled policies of its datacenter and cluster, general first. */
  policies: readonly CompiledPolicy[];
  facts: FactSource;
  clusterFacts: FactSource | undefined;
  datacenterFacts: FactSource | undefined;
  /** VMs present here (including ones in flight to or from it). */
  vms: Set<string>;
}

export interface VmSlot {
  id: string;
  name: string;
  /** Null for a VM not created yet. */
  object: ManagedObject | null;
  connectionId: string | null;
  /** Where it runs (-1: nowhere yet). */
  home: number;
  cpu: number;
  memoryBytes: number;
  /** Holds capacity where it is: running, suspended, paused or unknown (a stopped VM does not). */
  active: boolean;
  /** Its hypervisor type, or null when any will do. */
  type: string | null;
  /** Memory it dirties per second while running, when known. */
  dirtyBytesPerSecond: number | null;
  facts: FactSource;
  group: ManagedObject | undefined;
  groupFacts: FactSource | undefined;
  /**
   * It runs again from its portable description (high availability, after its host failed), not
   * by a migration: any host whose connection can create VMs may take it.
   */
  fromDescription?: boolean;
}

/** What affinity bookkeeping reads of a model. */
export interface SlotView {
  readonly hosts: readonly HostSlot[];
  readonly vms: ReadonlyMap<string, VmSlot>;
  readonly requester: FactSource | undefined;
}
