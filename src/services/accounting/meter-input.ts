/** What metering takes and gives: the recorded facts of a period, and its rows. */
import type { Facts, PowerState } from '../inventory/model.js';
import type { WattSample } from './energy.js';
import type { CompiledRateCard } from './rate-card.js';
import type { MeasuredSample, ReportRow } from './report-accumulator.js';
import type { Dimension } from '../../api/accounting.js';
import type { Granularity } from './timeline.js';

// What a report groups by is the contract's (src/api/accounting.ts).
export { dimensions, type Dimension } from '../../api/accounting.js';

export interface MeterHost {
  id: string;
  name: string;
  cluster: string;
  hypervisor: string;
  /** Facts rate rules match on (host facts, user facts, cluster, datacenter, host). */
  facts: Facts;
}

export interface MeterVm {
  id: string;
  name: string;
  cpus: number;
  memoryMiB: number;
  diskMiB: number;
  facts: Facts;
  tags: string[];
}

export interface ReportFilter {
  vmIds?: ReadonlySet<string>;
  owner?: string;
  group?: string;
  costCenter?: string;
}

export interface VmSize {
  from: number;
  cpus: number;
  memoryMiB: number;
  diskMiB: number;
}

export interface Ownership {
  owner: string;
  group: string;
  costCenter: string;
}

export interface OwnershipSpan extends Ownership {
  vmId: string;
  from: number;
  to: number | null;
}

export interface MeterInterval {
  vmId: string;
  hostId: string | null;
  powerState: PowerState;
  from: number;
  to: number | null;
}

/** The power draw of the machine under a host. */
export interface HostMachineSamples {
  machineId: string;
  samples: WattSample[];
}

export interface MeterEnergy {
  /** Longer than this between two samples is a gap: not guessed. */
  maxGapMs: number;
  /** By host id: the machine linked to it and its samples. */
  hosts: Map<string, HostMachineSamples>;
}

/** A host's energy over a report's period (money in minor units). */
export interface HostEnergy {
  hostId: string;
  hostName: string;
  machineId: string;
  kWh: number;
  /** The part of the period the machine's samples cover. */
  coveredMs: number;
  cost: number;
  /** The cost of the energy drawn while no VM ran on the host (in no VM's share). */
  unsharedCost: number;
}

export interface MeterInput {
  from: number;
  to: number;
  /** Open intervals end here (the present), or at `to` if that is earlier. */
  now: number;
  granularity: Granularity;
  groupBy: Dimension;
  timeZone: string;
  /** Sorted by effective date. */
  cards: CompiledRateCard[];
  vms: Map<string, MeterVm>;
  hosts: Map<string, MeterHost>;
  /** Sorted by VM, then start. */
  intervals: MeterInterval[];
  /** Sorted by VM, then start. */
  ownership: OwnershipSpan[];
  /** Who owns a VM when no span covers a time (for example the identity that created it). */
  defaultOwnership(vmId: string): Ownership;
  /**
   * Sizes over time per VM (sorted by start): each applies from its start until the next; before
   * the first, the first. A VM without any is metered at its current size.
   */
  allocations?: Map<string, VmSize[]>;
  /** Only these VMs, and only the time they had this owner, group or cost center. */
  filter?: ReportFilter;
  /** Measured usage (5-minute rollups), sorted by VM, then time; counted in the row the VM is in then. */
  measured?: MeasuredSample[];
  /**
   * The power draw of the machines under hosts. When a card prices energy (kWh), the cost of what
   * each machine draws is shared by the VMs running on its host (energy-shares.ts).
   */
  energy?: MeterEnergy;
  maxRows?: number;
}

export interface MeterResult {
  buckets: Array<{ start: number; end: number }>;
  rows: ReportRow[];
  /** Indices into input.cards of the versions that priced at least one piece. */
  cardsUsed: number[];
  totals: ReportRow['cost'];
  /** Distinct VMs per row key over the whole period. */
  vmsByKey: Map<string, number>;
  /** Per host on a machine, when a card prices energy: what it drew and cost over the period. */
  energy?: HostEnergy[];
}
