/**
 * Energy in a report, pure: what each host's machine drew in each slice of
 * the period (./energy.ts; with energy priced, slices are at most an hour:
 * the timeline cuts at every hour), its cost at the slice's kWh price, and
 * the running vCPU-milliseconds of every VM on the host in that slice — the
 * key by which the cost is shared: a VM pays cost × its vCPU-ms / all the
 * host's running vCPU-ms in the slice. Energy drawn in a slice where no VM
 * runs on the host is the host's (unshared), never spread over other slices.
 */
import { energyBetween } from './energy.js';
import type {
  HostEnergy,
  MeterEnergy,
  MeterHost,
  MeterInput,
  MeterVm,
  VmSize,
} from './meter-input.js';
import { divRound, microPerMinor, mulDivRound } from './money.js';
import type { UnitPrices } from './rate-card.js';
import type { Slice } from './timeline.js';

/** Per slice of one host. */
export interface HostSlices {
  /** Microwatt-hours drawn (integers: money stays exact, and fine enough at any price). */
  microWh: Float64Array;
  /** Cost in micro-minor units. */
  costMicro: Float64Array;
  /** vCPU × ms of the VMs running on the host. */
  vcpuMs: Float64Array;
  coveredMs: Float64Array;
}

export interface EnergyPlan {
  slicesOf(hostId: string): HostSlices | undefined;
  /** Per host over the period. */
  summary(): HostEnergy[];
  /** Per host and bucket: kWh and cost (minor units). */
  bucketFigures(hostId: string, bucket: number): { kWh: number; cost: number } | undefined;
}

/** The size a VM had at `at` (sizes sorted: each from its start; before the first, the first). */
export function sizeAt(vm: MeterVm, sizes: readonly VmSize[], at: number): VmSize | MeterVm {
  let size: VmSize | MeterVm = sizes[0] ?? vm;
  for (const next of sizes) {
    if (next.from > at) break;
    size = next;
  }
  return size;
}

export function planEnergy(
  input: MeterInput,
  energy: MeterEnergy,
  slices: readonly Slice[],
  end: number,
  pricesOf: (host: MeterHost, card: number, window: number) => UnitPrices,
): EnergyPlan {
  const byHost = new Map<string, HostSlices>();
  const bounds = slices.map((s) => s.start);
  bounds.push(slices[slices.length - 1]?.end ?? input.to);
  for (const [hostId, machine] of energy.hosts) {
    const host = input.hosts.get(hostId);
    if (!host) continue;
    const spans = energyBetween(machine.samples, bounds, energy.maxGapMs);
    const plan: HostSlices = {
      microWh: new Float64Array(slices.length),
      costMicro: new Float64Array(slices.length),
      vcpuMs: new Float64Array(slices.length),
      coveredMs: new Float64Array(slices.length),
    };
    spans.forEach((span, s) => {
      const slice = slices[s]!;
      // W × ms → µWh: 1 µWh is 3.6 W·ms.
      const microWh = Math.round(span.wattMs / 3.6);
      plan.microWh[s] = microWh;
      plan.coveredMs[s] = span.coveredMs;
      if (slice.card >= 0)
        plan.costMicro[s] = mulDivRound(
          pricesOf(host, slice.card, slice.window).kWh,
          microWh,
          1_000_000_000,
        );
    });
    byHost.set(hostId, plan);
  }
  // The sharing key counts every VM on the host, whatever a report's filter keeps.
  for (const interval of input.intervals) {
    if (interval.powerState !== 'running' || !interval.hostId) continue;
    const plan = byHost.get(interval.hostId);
    if (!plan) continue;
    const a = Math.max(interval.from, input.from);
    const b = Math.min(interval.to ?? end, end);
    if (a >= b) continue;
    const vm = input.vms.get(interval.vmId);
    const sizes = input.allocations?.get(interval.vmId) ?? [];
    const current = vm ?? { cpus: 0 };
    for (let s = firstSliceAt(slices, a); s < slices.length && slices[s]!.start < b; s++) {
      const slice = slices[s]!;
      const start = Math.max(a, slice.start);
      const stop = Math.min(b, slice.end);
      // A resize inside the slice: each part at its size.
      let at = start;
      while (at < stop) {
        const size = vm ? sizeAt(vm, sizes, at) : current;
        const next = sizes.find((z) => z.from > at)?.from ?? Number.POSITIVE_INFINITY;
        const partEnd = Math.min(stop, next);
        plan.vcpuMs[s]! += size.cpus * (partEnd - at);
        at = partEnd;
      }
    }
  }
  const perBucket = new Map<string, Map<number, { microWh: number; costMicro: number }>>();
  return {
    slicesOf: (hostId) => byHost.get(hostId),
    summary() {
      const hosts: HostEnergy[] = [];
      for (const [hostId, plan] of byHost) {
        let microWh = 0;
        let costMicro = 0;
        let unsharedMicro = 0;
        let coveredMs = 0;
        for (let s = 0; s < slices.length; s++) {
          microWh += plan.microWh[s]!;
          costMicro += plan.costMicro[s]!;
          coveredMs += plan.coveredMs[s]!;
          if (plan.vcpuMs[s] === 0) unsharedMicro += plan.costMicro[s]!;
        }
        hosts.push({
          hostId,
          hostName: input.hosts.get(hostId)!.name,
          machineId: energy.hosts.get(hostId)!.machineId,
          kWh: microWh / 1e9,
          coveredMs,
          cost: divRound(costMicro, microPerMinor),
          unsharedCost: divRound(unsharedMicro, microPerMinor),
        });
      }
      return hosts.sort(
        (x, y) => x.hostName.localeCompare(y.hostName) || x.hostId.localeCompare(y.hostId),
      );
    },
    bucketFigures(hostId, bucket) {
      const plan = byHost.get(hostId);
      if (!plan) return undefined;
      let buckets = perBucket.get(hostId);
      if (!buckets) {
        buckets = new Map();
        for (let s = 0; s < slices.length; s++) {
          const figures = buckets.get(slices[s]!.bucket) ?? { microWh: 0, costMicro: 0 };
          figures.microWh += plan.microWh[s]!;
          figures.costMicro += plan.costMicro[s]!;
          buckets.set(slices[s]!.bucket, figures);
        }
        perBucket.set(hostId, buckets);
      }
      const figures = buckets.get(bucket) ?? { microWh: 0, costMicro: 0 };
      return { kWh: figures.microWh / 1e9, cost: divRound(figures.costMicro, microPerMinor) };
    },
  };
}

/** Index of the slice holding `at` (slices sorted and contiguous). */
function firstSliceAt(slices: readonly Slice[], at: number): number {
  let low = 0;
  let high = slices.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (slices[mid]!.start <= at) low = mid;
    else high = mid - 1;
  }
  return low;
}
