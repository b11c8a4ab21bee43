/**
 * The rows of a report as sums of rounded atoms. A run of identical atoms
 * (one VM, the same host, owner and prices for many whole buckets) is added
 * once, as a difference at its first bucket and its end, instead of once per
 * bucket; rows are the prefix sums. Storage is blocks of buckets allocated on
 * first touch, so a slot that few atoms touch costs little memory.
 */
import { ZenithError } from '../../core/errors.js';

/** A cost split by what it is for, in minor currency units (integers). */
export interface CostBreakdown {
  vcpu: number;
  memory: number;
  disk: number;
  fixed: number;
  discount: number;
  /** The share of the energy of the hosts' machines (only when a rate card prices energy). */
  energy?: number;
  total: number;
}

export interface ReportRow {
  bucketStart: number;
  bucketEnd: number;
  key: string;
  label: string;
  vms: number;
  runningMs: number;
  suspendedMs: number;
  stoppedMs: number;
  vcpuMs: number;
  memoryMiBMs: number;
  diskMiBMs: number;
  /** Minor currency units. */
  cost: CostBreakdown;
  /** Usage the VMs' drivers measured (metrics history); null where no sample covers the row. */
  measured: MeasuredUsage;
  /** The VMs' share of their machines' energy (kWh; only when a rate card prices energy). */
  energyKWh?: number;
  /**
   * Rows of a report grouped by host, for a host on a machine whose energy is priced: what the
   * machine drew in the bucket and its cost, shared by the VMs or not.
   */
  machineEnergy?: { kWh: number; cost: number };
}

export interface MeasuredUsage {
  cpuSeconds: number | null;
  diskReadBytes: number | null;
  diskWriteBytes: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
}

/** Measured differences of one VM in one 5-minute rollup (see services/metrics). */
export interface MeasuredSample {
  vmId: string;
  at: number;
  cpuMs: number;
  diskReadBytes: number;
  diskWriteBytes: number;
  /** 0 when the driver reads no network counters. */
  netSpanMs: number;
  netRxBytes: number;
  netTxBytes: number;
}

/** The time a VM spent in each power state and the resources it held over it (ms, unit·ms). */
export const usageFields = [
  'runningMs',
  'suspendedMs',
  'stoppedMs',
  'vcpuMs',
  'memoryMiBMs',
  'diskMiBMs',
] as const;

/** Order of the values an atom adds (all integers: ms, unit·ms, minor units). */
export const atomFields = [
  ...usageFields,
  'vcpu',
  'memory',
  'disk',
  'fixed',
  'discount',
  'energy',
  // The energy share in microwatt-hours (an integer, like every other field).
  'energyMicroWh',
] as const;
export type AtomValues = Float64Array;
export const atomWidth = atomFields.length;
/** Index of the first money field in AtomValues, and one past the last. */
export const moneyFrom = 6;
export const moneyEnd = 12;

// One cell per bucket: the VM count, the atom fields, then the measured usage (see addMeasured).
const measuredFrom = atomWidth + 1;
const width = measuredFrom + 7;
const blockShift = 4;
const blockSize = 1 << blockShift;

export interface Slot {
  key: string;
  label: string;
  blocks: Array<Float64Array | undefined>;
  lastVm: string;
  lastBucket: number;
  /** VMs with any atom in the slot, over the whole period (a VM's atoms come one VM at a time). */
  distinctVms: number;
  minBucket: number;
  maxBucket: number;
}

export class ReportAccumulator {
  readonly totals: CostBreakdown;
  readonly #rows: ReportRow[] = [];
  readonly #slotsByKey = new Map<string, Slot>();
  /** Distinct VMs per key over the whole period. */
  readonly vmsByKey = new Map<string, number>();

  constructor(
    private readonly buckets: ReadonlyArray<{ start: number; end: number }>,
    private readonly maxRows: number,
    /** Rows and totals carry energy (a rate card prices it); without, they are as they were. */
    private readonly withEnergy = false,
  ) {
    this.totals = withEnergy
      ? { vcpu: 0, memory: 0, disk: 0, fixed: 0, discount: 0, energy: 0, total: 0 }
      : { vcpu: 0, memory: 0, disk: 0, fixed: 0, discount: 0, total: 0 };
  }

  slot(key: string, label: string): Slot {
    let slot = this.#slotsByKey.get(key);
    if (!slot) {
      slot = {
        key,
        label,
        blocks: new Array<Float64Array | undefined>(
          ((this.buckets.length + 1 + blockSize - 1) >> blockShift) + 1,
        ),
        lastVm: '',
        lastBucket: -1,
        distinctVms: 0,
        minBucket: Number.MAX_SAFE_INTEGER,
        maxBucket: -1,
      };
      this.#slotsByKey.set(key, slot);
    }
    return slot;
  }

  /** Adds the same rounded atom of one VM to every bucket in [first, end). */
  add(slot: Slot, vmId: string, first: number, end: number, values: AtomValues): void {
    // A VM counts once per row, however many atoms it has there (atoms of one VM come in time order).
    const counted = slot.lastVm === vmId && slot.lastBucket >= first ? slot.lastBucket + 1 : first;
    if (counted < end) {
      this.#cell(slot, counted)[(counted & (blockSize - 1)) * width]! += 1;
      this.#cell(slot, end)[(end & (blockSize - 1)) * width]! -= 1;
    }
    if (slot.lastVm !== vmId) slot.distinctVms++;
    if (slot.lastVm !== vmId || slot.lastBucket < end - 1) slot.lastBucket = end - 1;
    slot.lastVm = vmId;
    if (first < slot.minBucket) slot.minBucket = first;
    if (end - 1 > slot.maxBucket) slot.maxBucket = end - 1;
    const head = this.#cell(slot, first);
    const headAt = (first & (blockSize - 1)) * width + 1;
    const tail = this.#cell(slot, end);
    const tailAt = (end & (blockSize - 1)) * width + 1;
    for (let f = 0; f < atomWidth; f++) {
      const value = values[f]!;
      if (value === 0) continue;
      head[headAt + f]! += value;
      tail[tailAt + f]! -= value;
    }
    const n = end - first;
    const totals = this.totals;
    totals.vcpu += values[moneyFrom]! * n;
    totals.memory += values[moneyFrom + 1]! * n;
    totals.disk += values[moneyFrom + 2]! * n;
    totals.fixed += values[moneyFrom + 3]! * n;
    totals.discount += values[moneyFrom + 4]! * n;
    if (totals.energy !== undefined) totals.energy += values[moneyFrom + 5]! * n;
    totals.total +=
      (values[moneyFrom]! +
        values[moneyFrom + 1]! +
        values[moneyFrom + 2]! +
        values[moneyFrom + 3]! +
        values[moneyFrom + 5]! -
        values[moneyFrom + 4]!) *
      n;
  }

  /** Adds one measured sample to one bucket of a slot. */
  addMeasured(slot: Slot, bucket: number, sample: MeasuredSample): void {
    const head = this.#cell(slot, bucket);
    const tail = this.#cell(slot, bucket + 1);
    const at = (bucket & (blockSize - 1)) * width + measuredFrom;
    const tailAt = ((bucket + 1) & (blockSize - 1)) * width + measuredFrom;
    const values = [
      1,
      sample.cpuMs,
      sample.diskReadBytes,
      sample.diskWriteBytes,
      sample.netSpanMs > 0 ? 1 : 0,
      sample.netRxBytes,
      sample.netTxBytes,
    ];
    for (let f = 0; f < values.length; f++) {
      head[at + f]! += values[f]!;
      tail[tailAt + f]! -= values[f]!;
    }
    if (bucket < slot.minBucket) slot.minBucket = bucket;
    if (bucket > slot.maxBucket) slot.maxBucket = bucket;
  }

  /** Turns a slot's differences into rows; the slot must receive no more atoms. */
  emit(slot: Slot): void {
    const sums = new Float64Array(width);
    for (let b = slot.minBucket; b <= slot.maxBucket; b++) {
      const block = slot.blocks[b >> blockShift];
      if (block) {
        const at = (b & (blockSize - 1)) * width;
        for (let f = 0; f < width; f++) sums[f]! += block[at + f]!;
      }
      if (sums[0]! <= 0) continue;
      if (this.#rows.length >= this.maxRows)
        throw new ZenithError(
          'ZEN_REPORT_TOO_LARGE',
          `the report has more than ${this.maxRows} rows; narrow the period, coarsen the granularity or group by a wider dimension`,
          { maxRows: this.maxRows },
        );
      const vcpu = sums[7]!;
      const memory = sums[8]!;
      const disk = sums[9]!;
      const fixed = sums[10]!;
      const discount = sums[11]!;
      const energy = sums[12]!;
      this.#rows.push({
        bucketStart: this.buckets[b]!.start,
        bucketEnd: this.buckets[b]!.end,
        key: slot.key,
        label: slot.label,
        vms: sums[0]!,
        runningMs: sums[1]!,
        suspendedMs: sums[2]!,
        stoppedMs: sums[3]!,
        vcpuMs: sums[4]!,
        memoryMiBMs: sums[5]!,
        diskMiBMs: sums[6]!,
        cost: this.withEnergy
          ? {
              vcpu,
              memory,
              disk,
              fixed,
              discount,
              energy,
              total: vcpu + memory + disk + fixed + energy - discount,
            }
          : { vcpu, memory, disk, fixed, discount, total: vcpu + memory + disk + fixed - discount },
        measured: measuredOf(sums),
        ...(this.withEnergy ? { energyKWh: sums[13]! / 1e9 } : {}),
      });
    }
    this.vmsByKey.set(slot.key, slot.distinctVms);
    slot.blocks.fill(undefined);
    this.#slotsByKey.delete(slot.key);
  }

  /** Every row, sorted by bucket and key (emits the slots still open). */
  rows(): ReportRow[] {
    for (const slot of [...this.#slotsByKey.values()]) this.emit(slot);
    return this.#rows.sort(
      (x, y) => x.bucketStart - y.bucketStart || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0),
    );
  }

  #cell(slot: Slot, bucket: number): Float64Array {
    const index = bucket >> blockShift;
    let block = slot.blocks[index];
    if (!block) {
      block = new Float64Array(blockSize * width);
      slot.blocks[index] = block;
    }
    return block;
  }
}

function measuredOf(sums: Float64Array): MeasuredUsage {
  const measured = sums[measuredFrom]! > 0;
  const network = sums[measuredFrom + 4]! > 0;
  return {
    cpuSeconds: measured ? sums[measuredFrom + 1]! / 1000 : null,
    diskReadBytes: measured ? sums[measuredFrom + 2]! : null,
    diskWriteBytes: measured ? sums[measuredFrom + 3]! : null,
    netRxBytes: network ? sums[measuredFrom + 5]! : null,
    netTxBytes: network ? sums[measuredFrom + 6]! : null,
  };
}
