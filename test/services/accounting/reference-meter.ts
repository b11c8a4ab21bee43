/**
 * The straightforward costing that metering.ts optimises: every piece of every
 * interval (one slice of the timeline, one ownership span) is costed on its
 * own, and the atoms of each VM and bucket are flushed one by one. Kept as the
 * reference the optimised path must equal to the minor unit.
 */
import { ZenithError } from '../../../src/core/errors.js';
import { divRound, microPerMinor, mulDivRound } from '../../../src/services/accounting/money.js';
import type {
  MeterHost,
  MeterInput,
  MeterResult,
  MeterVm,
  Ownership,
  OwnershipSpan,
  ReportRow,
} from '../../../src/services/accounting/metering.js';
import type { UnitPrices } from '../../../src/services/accounting/rate-card.js';
import { buildTimeline, type Slice } from '../../../src/services/accounting/timeline.js';

const hourMs = 3_600_000;
const gibHourDivisor = hourMs * 1024;
const unknownHost: MeterHost = {
  id: '',
  name: '(unknown)',
  cluster: '(unknown)',
  hypervisor: '(unknown)',
  facts: {},
};

interface Atom {
  host: MeterHost;
  ownership: Ownership;
  runningMs: number;
  suspendedMs: number;
  stoppedMs: number;
  vcpuMs: number;
  memoryMiBMs: number;
  diskMiBMs: number;
  vcpu: number;
  memory: number;
  disk: number;
  fixed: number;
  discount: number;
}

function newAtom(host: MeterHost, ownership: Ownership): Atom {
  return {
    host,
    ownership,
    runningMs: 0,
    suspendedMs: 0,
    stoppedMs: 0,
    vcpuMs: 0,
    memoryMiBMs: 0,
    diskMiBMs: 0,
    vcpu: 0,
    memory: 0,
    disk: 0,
    fixed: 0,
    discount: 0,
  };
}

/** Index of the slice containing `at` (slices are contiguous and sorted). */
function sliceAt(slices: Slice[], at: number): number {
  let low = 0;
  let high = slices.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (slices[mid]!.start <= at) low = mid;
    else high = mid - 1;
  }
  return low;
}

export function referenceMeter(input: MeterInput): MeterResult {
  const { from, to, cards } = input;
  const end = Math.min(to, input.now);
  const timeline = buildTimeline(from, to, input.granularity, input.timeZone, cards);
  const { slices, buckets } = timeline;
  const maxRows = input.maxRows ?? 200_000;
  type Row = ReportRow & { lastVm: string };
  interface Slot {
    key: string;
    label: string;
    rows: Row[];
  }
  let rowCount = 0;
  const slotsByKey = new Map<string, Slot>();
  // Hosts, ownership spans and VMs are few compared with pieces: their slot is looked up once.
  const slotByObject = new Map<object, Slot>();
  const slotOf = (vm: MeterVm, atom: Atom): Slot => {
    const object =
      input.groupBy === 'vm'
        ? vm
        : ['owner', 'group', 'costCenter'].includes(input.groupBy)
          ? atom.ownership
          : atom.host;
    let slot = slotByObject.get(object);
    if (!slot) {
      const [key, label] = dimensionOf(vm, atom);
      slot = slotsByKey.get(key);
      if (!slot) {
        slot = { key, label, rows: [] };
        slotsByKey.set(key, slot);
      }
      slotByObject.set(object, slot);
    }
    return slot;
  };
  const cardsUsed = new Set<number>();
  const vmsSeen = new Map<string, Set<string>>();
  const totals = { vcpu: 0, memory: 0, disk: 0, fixed: 0, discount: 0, total: 0 };
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

  const dimensionOf = (vm: MeterVm, atom: Atom): [string, string] => {
    switch (input.groupBy) {
      case 'vm':
        return [vm.id, vm.name];
      case 'host':
        return [atom.host.id || '(unknown)', atom.host.name];
      case 'cluster':
        return [atom.host.cluster, atom.host.cluster];
      case 'hypervisor':
        return [atom.host.hypervisor, atom.host.hypervisor];
      case 'owner':
        return [atom.ownership.owner, atom.ownership.owner];
      case 'group':
        return [atom.ownership.group, atom.ownership.group];
      case 'costCenter':
        return [atom.ownership.costCenter, atom.ownership.costCenter];
    }
  };

  const flush = (vm: MeterVm, bucket: number, atoms: Atom[]) => {
    for (const atom of atoms) {
      const vcpu = divRound(atom.vcpu, microPerMinor);
      const memory = divRound(atom.memory, microPerMinor);
      const disk = divRound(atom.disk, microPerMinor);
      const fixed = divRound(atom.fixed, microPerMinor);
      const discount = divRound(atom.discount, microPerMinor);
      const total = vcpu + memory + disk + fixed - discount;
      const slot = slotOf(vm, atom);
      const seen = vmsSeen.get(slot.key) ?? new Set<string>();
      seen.add(vm.id);
      vmsSeen.set(slot.key, seen);
      let row = slot.rows[bucket];
      if (!row) {
        if (rowCount >= maxRows)
          throw new ZenithError(
            'ZEN_REPORT_TOO_LARGE',
            `the report has more than ${maxRows} rows; narrow the period, coarsen the granularity or group by a wider dimension`,
            { maxRows },
          );
        rowCount++;
        row = {
          bucketStart: buckets[bucket]!.start,
          bucketEnd: buckets[bucket]!.end,
          key: slot.key,
          label: slot.label,
          vms: 0,
          lastVm: '',
          runningMs: 0,
          suspendedMs: 0,
          stoppedMs: 0,
          vcpuMs: 0,
          memoryMiBMs: 0,
          diskMiBMs: 0,
          cost: { vcpu: 0, memory: 0, disk: 0, fixed: 0, discount: 0, total: 0 },
          // The reference knows no measured usage.
          measured: {
            cpuSeconds: null,
            diskReadBytes: null,
            diskWriteBytes: null,
            netRxBytes: null,
            netTxBytes: null,
          },
        };
        slot.rows[bucket] = row;
      }
      if (row.lastVm !== vm.id) {
        row.vms++;
        row.lastVm = vm.id;
      }
      row.runningMs += atom.runningMs;
      row.suspendedMs += atom.suspendedMs;
      row.stoppedMs += atom.stoppedMs;
      row.vcpuMs += atom.vcpuMs;
      row.memoryMiBMs += atom.memoryMiBMs;
      row.diskMiBMs += atom.diskMiBMs;
      row.cost.vcpu += vcpu;
      row.cost.memory += memory;
      row.cost.disk += disk;
      row.cost.fixed += fixed;
      row.cost.discount += discount;
      row.cost.total += total;
      totals.vcpu += vcpu;
      totals.memory += memory;
      totals.disk += disk;
      totals.fixed += fixed;
      totals.discount += discount;
      totals.total += total;
    }
    atoms.length = 0;
  };

  const ownershipByVm = new Map<string, OwnershipSpan[]>();
  for (const span of input.ownership) {
    const list = ownershipByVm.get(span.vmId);
    if (list) list.push(span);
    else ownershipByVm.set(span.vmId, [span]);
  }

  let i = 0;
  const intervals = input.intervals;
  while (i < intervals.length) {
    const vmId = intervals[i]!.vmId;
    const vm = input.vms.get(vmId) ?? {
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
    const fixedPerCard = cards.map((c) => c.fixedFor(vm.facts, vm.tags));
    const atoms: Atom[] = [];
    let bucket = -1;
    for (; i < intervals.length && intervals[i]!.vmId === vmId; i++) {
      const interval = intervals[i]!;
      const a = Math.max(interval.from, from);
      const b = Math.min(interval.to ?? end, end);
      if (a >= b) continue;
      const host = (interval.hostId && input.hosts.get(interval.hostId)) || unknownHost;
      const state = interval.powerState;
      const running = state === 'running';
      const holdsMemory = running || state === 'suspended' || state === 'paused';
      for (let s = sliceAt(slices, a); s < slices.length && slices[s]!.start < b; s++) {
        const slice = slices[s]!;
        let pieceStart = Math.max(a, slice.start);
        const sliceEnd = Math.min(b, slice.end);
        if (slice.bucket !== bucket) {
          if (bucket >= 0) flush(vm, bucket, atoms);
          bucket = slice.bucket;
        }
        // An ownership change inside the slice splits it again.
        while (pieceStart < sliceEnd) {
          let ownership: Ownership = fallback;
          let pieceEnd = sliceEnd;
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
          const ms = pieceEnd - pieceStart;
          let atom = atoms.find((x) => x.host === host && x.ownership === ownership);
          if (!atom) {
            atom = newAtom(host, ownership);
            atoms.push(atom);
          }
          if (running) atom.runningMs += ms;
          else if (holdsMemory) atom.suspendedMs += ms;
          else atom.stoppedMs += ms;
          if (running) atom.vcpuMs += vm.cpus * ms;
          if (holdsMemory) atom.memoryMiBMs += vm.memoryMiB * ms;
          atom.diskMiBMs += vm.diskMiB * ms;
          if (slice.card >= 0) {
            cardsUsed.add(slice.card);
            const card = cards[slice.card]!;
            const prices = pricesOf(host, slice.card, slice.window);
            const fixedMonthly = fixedPerCard[slice.card]!;
            const discountBp = card.discountFor(ownership.group);
            const vcpu = running ? mulDivRound(prices.vcpu * vm.cpus, ms, hourMs) : 0;
            const memory = holdsMemory
              ? mulDivRound(prices.memoryGiB * vm.memoryMiB, ms, gibHourDivisor)
              : 0;
            const disk = mulDivRound(prices.disk * vm.diskMiB, ms, gibHourDivisor);
            const fixed = fixedMonthly > 0 ? mulDivRound(fixedMonthly, ms, slice.monthMs) : 0;
            const discount =
              discountBp > 0 ? mulDivRound(vcpu + memory + disk + fixed, discountBp, 10_000) : 0;
            atom.vcpu += vcpu;
            atom.memory += memory;
            atom.disk += disk;
            atom.fixed += fixed;
            atom.discount += discount;
          }
          pieceStart = pieceEnd;
        }
      }
    }
    if (bucket >= 0) flush(vm, bucket, atoms);
  }
  const sorted = [...slotsByKey.values()]
    .flatMap((slot) => slot.rows.filter((row) => row !== undefined))
    .sort((x, y) => x.bucketStart - y.bucketStart || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0))
    .map(({ lastVm: _lastVm, ...row }) => row);
  return {
    buckets,
    rows: sorted,
    cardsUsed: [...cardsUsed].sort((x, y) => x - y),
    totals,
    vmsByKey: new Map([...vmsSeen].map(([key, vms]) => [key, vms.size])),
  };
}
