/**
 * Metering and costing, pure: location intervals × VM allocations × ownership
 * spans × rate cards → report rows. Nothing here reads the store or a clock,
 * so any past period can be recomputed and gives the same answer.
 *
 * Money: each piece of an interval is costed in micro-minor units (exact
 * integer rounding); the atom of a report — one VM, one bucket, one host, one
 * ownership — is rounded once to minor units; every total is a sum of atoms,
 * so a group's total is exactly the sum of its VMs, and every dimension adds
 * up to the same grand total.
 *
 * Speed: inside a stretch of one VM where host, power state and owner stay the
 * same, every whole bucket of one class (same slices, windows, card and month
 * length) costs the same atom: it is costed once per stretch and class and
 * added to the whole run of buckets at once (see report-accumulator.ts). Only
 * buckets a stretch starts or ends inside are costed piece by piece.
 */
import { divRound, microPerMinor, mulDivRound } from './money.js';
import type { UnitPrices } from './rate-card.js';
import { buildTimeline } from './timeline.js';
import type {
  Dimension,
  MeterHost,
  MeterInput,
  MeterResult,
  MeterVm,
  Ownership,
  OwnershipSpan,
} from './meter-input.js';
import { planEnergy, type HostSlices } from './energy-shares.js';
import {
  atomWidth,
  moneyEnd,
  ReportAccumulator,
  type AtomValues,
  type MeasuredSample,
  type Slot,
} from './report-accumulator.js';

export type { MeasuredSample, MeasuredUsage, ReportRow } from './report-accumulator.js';
export * from './meter-input.js';
import { planBuckets } from './bucket-plan.js';

const hourMs = 3_600_000;
const gibHourDivisor = hourMs * 1024;
const unknownHost: MeterHost = {
  id: '',
  name: '(unknown)',
  cluster: '(unknown)',
  hypervisor: '(unknown)',
  facts: {},
};

/** An atom being summed: micro-minor units until it is rounded. */
interface PartialAtom {
  host: MeterHost;
  ownership: Ownership;
  values: AtomValues;
}

/** Index of the first element whose start is after `at`, minus one (items sorted by start). */
function indexAt(items: ReadonlyArray<{ start: number }>, at: number): number {
  let low = 0;
  let high = items.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (items[mid]!.start <= at) low = mid;
    else high = mid - 1;
  }
  return low;
}

export function meter(input: MeterInput): MeterResult {
  const { from, to, cards } = input;
  const end = Math.min(to, input.now);
  // Energy is in a report as soon as a card prices it (with no samples, it is zero). It is shared
  // hour by hour: slices are cut at every hour too, so a VM pays only for hours it ran in.
  const withEnergy = cards.some((card) => card.pricesEnergy);
  const { slices, buckets } = buildTimeline(
    from,
    to,
    input.granularity,
    input.timeZone,
    cards,
    withEnergy ? hourMs : undefined,
  );
  const plan = planBuckets(slices, buckets.length, withEnergy);
  const report = new ReportAccumulator(buckets, input.maxRows ?? 200_000, withEnergy);
  const cardsUsed = new Set<number>();
  const byOwnership = ['owner', 'group', 'costCenter'].includes(input.groupBy);

  // Hosts, ownership spans and VMs are few compared with atoms: their slot is looked up once.
  const slotByObject = new Map<object, Slot>();
  const slotOf = (vm: MeterVm, host: MeterHost, ownership: Ownership): Slot => {
    const object = input.groupBy === 'vm' ? vm : byOwnership ? ownership : host;
    let slot = slotByObject.get(object);
    if (!slot) {
      const [key, label] = dimensionOf(input.groupBy, vm, host, ownership);
      slot = report.slot(key, label);
      slotByObject.set(object, slot);
    }
    return slot;
  };
  // Prices per card, host and window: looked up once, not per piece.
  const priceCache = new Map<MeterHost, UnitPrices[][]>();
  const pricesOf = (host: MeterHost, card: number, window: number): UnitPrices => {
    let perCard = priceCache.get(host);
    if (!perCard) {
      perCard = cards.map((c) => [
        c.pricesFor(host.facts, null),
        ...c.windows.map((w) => c.pricesFor(host.facts, w)),
      ]);
      priceCache.set(host, perCard);
    }
    return perCard[card]![window + 1]!;
  };
  const energy = withEnergy
    ? planEnergy(input, input.energy ?? { maxGapMs: 0, hosts: new Map() }, slices, end, pricesOf)
    : undefined;
  const energySlicesOf = new Map<MeterHost, HostSlices | undefined>();

  // Where the current VM's atoms went, in time order: measured usage follows them.
  const vmRanges: Array<{ first: number; end: number; slot: Slot }> = [];
  const addAtom = (slot: Slot, first: number, last: number, values: AtomValues): void => {
    report.add(slot, vm.id, first, last, values);
    vmRanges.push({ first, end: last, slot });
  };
  const measuredByVm = new Map<string, MeasuredSample[]>();
  for (const sample of input.measured ?? []) {
    const list = measuredByVm.get(sample.vmId);
    if (list) list.push(sample);
    else measuredByVm.set(sample.vmId, [sample]);
  }
  const addMeasured = (): void => {
    let r = 0;
    for (const sample of measuredByVm.get(vm.id) ?? []) {
      if (sample.at < from || sample.at >= end) continue;
      const bucket = indexAt(buckets, sample.at);
      while (r < vmRanges.length && vmRanges[r]!.end <= bucket) r++;
      const range = vmRanges[r];
      // Measured while the history has the VM nowhere: no row to put it in.
      if (range && range.first <= bucket) report.addMeasured(range.slot, bucket, sample);
    }
    vmRanges.length = 0;
  };

  const ownershipByVm = new Map<string, OwnershipSpan[]>();
  for (const span of input.ownership) {
    const list = ownershipByVm.get(span.vmId);
    if (list) list.push(span);
    else ownershipByVm.set(span.vmId, [span]);
  }

  // State of the VM and stretch being costed (reused, so the loop allocates almost nothing).
  let vm!: MeterVm;
  let fixedPerCard: number[] = [];
  let size: { cpus: number; memoryMiB: number; diskMiB: number } = {
    cpus: 0,
    memoryMiB: 0,
    diskMiB: 0,
  };
  let host = unknownHost;
  /** The current host's energy per slice (a host on a machine, energy priced), else undefined. */
  let hostEnergy: HostSlices | undefined;
  let ownership!: Ownership;
  let running = false;
  let holdsMemory = false;
  const pending: PartialAtom[] = [];
  let pendingBucket = -1;
  const classValues: Array<AtomValues | undefined> = [];
  const rounded = new Float64Array(atomWidth);

  /** Adds one piece [start, start + ms) of one slice to `values` (usage exact, money in micro units). */
  const addPiece = (values: AtomValues, sliceIndex: number, ms: number): void => {
    const slice = slices[sliceIndex]!;
    if (running) values[0]! += ms;
    else if (holdsMemory) values[1]! += ms;
    else values[2]! += ms;
    if (running) values[3]! += size.cpus * ms;
    if (holdsMemory) values[4]! += size.memoryMiB * ms;
    values[5]! += size.diskMiB * ms;
    if (slice.card < 0) return;
    cardsUsed.add(slice.card);
    const prices = pricesOf(host, slice.card, slice.window);
    const fixedMonthly = fixedPerCard[slice.card]!;
    const discountBp = cards[slice.card]!.discountFor(ownership.group);
    const vcpu = running ? mulDivRound(prices.vcpu * size.cpus, ms, hourMs) : 0;
    const memory = holdsMemory
      ? mulDivRound(prices.memoryGiB * size.memoryMiB, ms, gibHourDivisor)
      : 0;
    const disk = mulDivRound(prices.disk * size.diskMiB, ms, gibHourDivisor);
    const fixed = fixedMonthly > 0 ? mulDivRound(fixedMonthly, ms, slice.monthMs) : 0;
    let energyShare = 0;
    if (running && hostEnergy && size.cpus > 0) {
      // This VM's running vCPU-ms against all the host's in the slice (energy-shares.ts).
      const s = sliceIndex;
      const all = hostEnergy.vcpuMs[s]!;
      if (all > 0) {
        energyShare = mulDivRound(hostEnergy.costMicro[s]!, size.cpus * ms, all);
        values[12]! += mulDivRound(hostEnergy.microWh[s]!, size.cpus * ms, all);
      }
    }
    const discount =
      discountBp > 0
        ? mulDivRound(vcpu + memory + disk + fixed + energyShare, discountBp, 10_000)
        : 0;
    values[6]! += vcpu;
    values[7]! += memory;
    values[8]! += disk;
    values[9]! += fixed;
    values[10]! += discount;
    values[11]! += energyShare;
  };
  /** Rounds an atom's money once, half up, to minor units (into `out`). */
  const round = (values: AtomValues, out: AtomValues): AtomValues => {
    for (let f = 0; f < 6; f++) out[f] = values[f]!;
    for (let f = 6; f < moneyEnd; f++) out[f] = divRound(values[f]!, microPerMinor);
    for (let f = moneyEnd; f < atomWidth; f++) out[f] = values[f]!;
    return out;
  };
  const flushPending = (): void => {
    for (const atom of pending)
      addAtom(
        slotOf(vm, atom.host, atom.ownership),
        pendingBucket,
        pendingBucket + 1,
        round(atom.values, rounded),
      );
    pending.length = 0;
    pendingBucket = -1;
  };
  /** A piece of the current stretch inside one bucket, [a, b): costed slice by slice. */
  const partial = (a: number, b: number, bucket: number): void => {
    if (bucket !== pendingBucket) {
      flushPending();
      pendingBucket = bucket;
    }
    let atom = pending.find((x) => x.host === host && x.ownership === ownership);
    if (!atom) {
      atom = { host, ownership, values: new Float64Array(atomWidth) };
      pending.push(atom);
    }
    for (let s = indexAt(slices, a); s < slices.length && slices[s]!.start < b; s++) {
      const slice = slices[s]!;
      addPiece(atom.values, s, Math.min(b, slice.end) - Math.max(a, slice.start));
    }
  };
  /** Whole buckets [first, last) of the current stretch: one atom per bucket class, added per run. */
  const whole = (first: number, last: number): void => {
    if (first >= last) return;
    flushPending();
    classValues.fill(undefined);
    const slot = slotOf(vm, host, ownership);
    for (let r = indexAt(plan.runs, first); r < plan.runs.length; r++) {
      const run = plan.runs[r]!;
      if (run.start >= last) break;
      let values = classValues[run.bucketClass];
      if (!values) {
        const sum = new Float64Array(atomWidth);
        const bucket = plan.classBucket[run.bucketClass]!;
        for (let s = plan.firstSlice[bucket]!; s < plan.firstSlice[bucket + 1]!; s++) {
          const slice = slices[s]!;
          addPiece(sum, s, slice.end - slice.start);
        }
        values = round(sum, sum);
        classValues[run.bucketClass] = values;
      }
      addAtom(slot, Math.max(first, run.start), Math.min(last, run.end), values);
    }
  };
  /** [a, b) of one VM on one host, in one power state, with one ownership. */
  const stretch = (a: number, b: number): void => {
    let bucket = indexAt(buckets, a);
    if (a > buckets[bucket]!.start || b < buckets[bucket]!.end) {
      const pieceEnd = Math.min(b, buckets[bucket]!.end);
      partial(a, pieceEnd, bucket);
      if (pieceEnd >= b) return;
      bucket++;
    }
    const last = b >= to ? buckets.length : indexAt(buckets, b);
    whole(bucket, last);
    if (last < buckets.length && buckets[last]!.start < b) partial(buckets[last]!.start, b, last);
  };

  const filter = input.filter;
  const ownedAsFiltered = (owned: Ownership): boolean =>
    !filter ||
    ((filter.owner === undefined || owned.owner === filter.owner) &&
      (filter.group === undefined || owned.group === filter.group) &&
      (filter.costCenter === undefined || owned.costCenter === filter.costCenter));
  const intervals = input.intervals;
  let i = 0;
  while (i < intervals.length) {
    const vmId = intervals[i]!.vmId;
    if (filter?.vmIds && !filter.vmIds.has(vmId)) {
      while (i < intervals.length && intervals[i]!.vmId === vmId) i++;
      continue;
    }
    vm = input.vms.get(vmId) ?? {
      id: vmId,
      name: vmId,
      cpus: 0,
      memoryMiB: 0,
      diskMiB: 0,
      facts: {},
      tags: [],
    };
    const spans = ownershipByVm.get(vmId) ?? [];
    const fallback = input.defaultOwnership(vmId);
    fixedPerCard = cards.map((c) => c.fixedFor(vm.facts, vm.tags));
    const sizes = input.allocations?.get(vmId) ?? [];
    for (; i < intervals.length && intervals[i]!.vmId === vmId; i++) {
      const interval = intervals[i]!;
      const a = Math.max(interval.from, from);
      const b = Math.min(interval.to ?? end, end);
      if (a >= b) continue;
      host = (interval.hostId && input.hosts.get(interval.hostId)) || unknownHost;
      if (energy) {
        if (!energySlicesOf.has(host)) energySlicesOf.set(host, energy.slicesOf(host.id));
        hostEnergy = energySlicesOf.get(host);
      }
      running = interval.powerState === 'running';
      holdsMemory =
        running || interval.powerState === 'suspended' || interval.powerState === 'paused';
      // An ownership change inside the interval splits it into stretches.
      let pieceStart = a;
      while (pieceStart < b) {
        ownership = fallback;
        let pieceEnd = b;
        for (const span of spans) {
          if (span.from > pieceStart) {
            pieceEnd = Math.min(pieceEnd, span.from);
            break;
          }
          if (span.to === null || span.to > pieceStart) {
            ownership = span;
            if (span.to !== null) pieceEnd = Math.min(pieceEnd, span.to);
            break;
          }
        }
        // So does a change of size: each part is metered at the size it had.
        size = vm;
        for (let z = 0; z < sizes.length; z++) {
          const next = sizes[z + 1];
          if (next && next.from <= pieceStart) continue;
          size = sizes[z]!;
          if (next) pieceEnd = Math.min(pieceEnd, next.from);
          break;
        }
        if (ownedAsFiltered(ownership)) stretch(pieceStart, pieceEnd);
        pieceStart = pieceEnd;
      }
    }
    flushPending();
    addMeasured();
    if (input.groupBy === 'vm') {
      const slot = slotByObject.get(vm);
      if (slot) {
        report.emit(slot);
        slotByObject.delete(vm);
      }
    }
  }
  const rows = report.rows();
  if (energy && input.groupBy === 'host')
    for (const row of rows) {
      const figures = energy.bucketFigures(row.key, indexAt(buckets, row.bucketStart));
      if (figures) row.machineEnergy = figures;
    }
  return {
    buckets,
    rows,
    cardsUsed: [...cardsUsed].sort((x, y) => x - y),
    totals: report.totals,
    vmsByKey: report.vmsByKey,
    ...(energy ? { energy: energy.summary() } : {}),
  };
}

function dimensionOf(
  groupBy: Dimension,
  vm: MeterVm,
  host: MeterHost,
  ownership: Ownership,
): [string, string] {
  switch (groupBy) {
    case 'vm':
      return [vm.id, vm.name];
    case 'host':
      return [host.id || '(unknown)', host.name];
    case 'cluster':
      return [host.cluster, host.cluster];
    case 'hypervisor':
      return [host.hypervisor, host.hypervisor];
    case 'owner':
      return [ownership.owner, ownership.owner];
    case 'group':
      return [ownership.group, ownership.group];
    case 'costCenter':
      return [ownership.costCenter, ownership.costCenter];
  }
}
