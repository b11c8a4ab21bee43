/**
 * The rebalancer: computes moves that make the fleet better without breaking
 * any policy, on a placement model (which it leaves as it found it).
 *
 * - **balance**: repeatedly takes the busiest host (load: the busier of CPU
 *   and memory use) and looks for a move off it to one of the least loaded
 *   hosts, fleet-wide or in its own cluster, that can take the VM (capacity,
 *   affinity, constraints — the placement checks). A move must lower the
 *   busier of its two hosts by at least `minBenefit` (in load, 0.05 = 5
 *   points); among those, the one that buys the most per second of migration
 *   wins (its memory over the link it would cross), so moves stay inside a
 *   cluster or datacenter unless leaving it is worth the slower link. The
 *   busiest host with no such move is set aside.
 * - **consolidate**: empties the least loaded hosts (load up to
 *   `consolidateBelow`), biggest VMs first, onto the nearest (same cluster,
 *   then datacenter) and within that the busiest hosts that can take them
 *   without going above `targetLoad` — a lighter host may go to one that was
 *   to be emptied after it, which then stays; never onto a host with no VM
 *   (it is free already) — a host is emptied wholly or not at all, so every
 *   move frees a host in the end.
 *
 * Both stop at `maxMoves`. Every move is checked on the model as changed by
 * the moves before it, so the moves one at a time never break a policy; the
 * migration planner then orders them in time.
 */
import { VmPlacer } from '../placement/placement-engine.js';
import { loadOf, type PlacementModel } from '../placement/placement-model.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';
import type { Move } from './migration-planner.js';
import { LoadHeap } from './load-heap.js';

export type RebalanceMode = 'balance' | 'consolidate';

export interface RebalanceOptions {
  mode: RebalanceMode;
  maxMoves: number;
  /** balance: the least drop of the busier host's load a move must bring (0–1). */
  minBenefit: number;
  /** Only these hosts take part (a cluster, a datacenter). */
  within?: (host: HostSlot) => boolean;
  /** consolidate: hosts up to this load are emptied. */
  consolidateBelow?: number;
  /** consolidate: targets are not filled above this load. */
  targetLoad?: number;
  /** balance: how many of the least loaded hosts are tried per VM. */
  targetsPerVm?: number;
}

export interface PlannedRebalanceMove extends Move {
  vmName: string;
  fromHostName: string;
  toHostName: string;
  memoryBytes: number;
  cpu: number;
  /** balance: how much the busier of the two hosts' load drops. */
  benefit: number;
}

export interface Imbalance {
  hosts: number;
  meanLoad: number;
  /** Standard deviation of the hosts' loads: the imbalance. */
  stddevLoad: number;
  maxLoad: number;
  minLoad: number;
  /** Hosts without any VM. */
  emptyHosts: number;
}

export interface RebalanceResult {
  mode: RebalanceMode;
  moves: PlannedRebalanceMove[];
  before: Imbalance;
  after: Imbalance;
  /** consolidate: the hosts the moves empty. */
  hostsEmptied: string[];
  bytesMoved: number;
}

export function imbalanceOf(hosts: readonly HostSlot[]): Imbalance {
  if (hosts.length === 0)
    return { hosts: 0, meanLoad: 0, stddevLoad: 0, maxLoad: 0, minLoad: 0, emptyHosts: 0 };
  let sum = 0;
  let sumSquares = 0;
  let max = -Infinity;
  let min = Infinity;
  let empty = 0;
  for (const host of hosts) {
    const load = loadOf(host);
    sum += load;
    sumSquares += load * load;
    max = Math.max(max, load);
    min = Math.min(min, load);
    if (host.vms.size === 0) empty++;
  }
  const mean = sum / hosts.length;
  return {
    hosts: hosts.length,
    meanLoad: mean,
    stddevLoad: Math.sqrt(Math.max(0, sumSquares / hosts.length - mean * mean)),
    maxLoad: max,
    minLoad: min,
    emptyHosts: empty,
  };
}

/** Hosts that take part: connected and in scope. */
export function eligibleHosts(model: PlacementModel, within?: (host: HostSlot) => boolean) {
  return model.hosts.filter((host) => host.state === 'connected' && (within?.(host) ?? true));
}

export function planRebalance(model: PlacementModel, options: RebalanceOptions): RebalanceResult {
  const hosts = eligibleHosts(model, options.within);
  const before = imbalanceOf(hosts);
  const placers = new Map<string, VmPlacer>();
  const placerOf = (vm: VmSlot) => {
    let placer = placers.get(vm.id);
    if (!placer) placers.set(vm.id, (placer = new VmPlacer(model, vm)));
    return placer;
  };
  const result =
    options.mode === 'balance'
      ? balance(model, hosts, options, placerOf)
      : consolidate(model, hosts, options, placerOf);
  const after = imbalanceOf(hosts);
  // Leave the model as it was: callers schedule the moves from the current state.
  for (const move of [...result.moves].reverse())
    model.move(model.vms.get(move.vmId)!, model.host(move.fromHostId));
  return {
    mode: options.mode,
    moves: result.moves,
    before,
    after,
    hostsEmptied: result.emptied,
    bytesMoved: result.moves.reduce((sum, m) => sum + m.memoryBytes, 0),
  };
}

export function moveOf(
  vm: VmSlot,
  from: HostSlot,
  to: HostSlot,
  benefit: number,
): PlannedRebalanceMove {
  return {
    vmId: vm.id,
    fromHostId: from.id,
    toHostId: to.id,
    vmName: vm.name,
    fromHostName: from.name,
    toHostName: to.name,
    memoryBytes: vm.memoryBytes,
    cpu: vm.cpu,
    benefit,
  };
}

/** The bandwidth a move between two hosts would get alone: their networks, and the link it crosses. */
function linkRate(source: HostSlot, target: HostSlot): number {
  let rate = Math.min(
    source.migration.hostBandwidthBytesPerSecond,
    target.migration.hostBandwidthBytesPerSecond,
  );
  if ((source.datacenter?.id ?? null) !== (target.datacenter?.id ?? null))
    rate = Math.min(rate, source.migration.interDatacenterBandwidthBytesPerSecond);
  else if ((source.cluster?.id ?? null) !== (target.cluster?.id ?? null))
    rate = Math.min(rate, source.migration.interClusterBandwidthBytesPerSecond);
  return rate;
}

function balance(
  model: PlacementModel,
  hosts: HostSlot[],
  options: RebalanceOptions,
  placerOf: (vm: VmSlot) => VmPlacer,
): { moves: PlannedRebalanceMove[]; emptied: string[] } {
  const moves: PlannedRebalanceMove[] = [];
  const sources = new LoadHeap(true);
  const targets = new LoadHeap(false);
  // Per cluster too: the cheapest moves stay on the cluster's own network.
  const clusterTargets = new Map<string, LoadHeap>();
  const clusterOf = (host: HostSlot) => host.cluster?.id ?? `host:${host.id}`;
  const pushTarget = (host: HostSlot) => {
    targets.push(host);
    let heap = clusterTargets.get(clusterOf(host));
    if (!heap) clusterTargets.set(clusterOf(host), (heap = new LoadHeap(false)));
    heap.push(host);
  };
  const lightest = (heap: LoadHeap | undefined, count: number): HostSlot[] => {
    const out: HostSlot[] = [];
    while (heap && out.length < count) {
      const host = heap.pop();
      if (!host) break;
      out.push(host);
    }
    for (const host of out) heap!.push(host);
    return out;
  };
  for (const host of hosts) {
    sources.push(host);
    pushTarget(host);
  }
  const perVm = options.targetsPerVm ?? 16;
  const moved = new Set<string>();
  while (moves.length < options.maxMoves) {
    const source = sources.pop();
    if (!source) break;
    const sourceLoad = loadOf(source);
    // The least loaded hosts, fleet-wide and in the source's cluster: a move can help only toward them.
    const fleetWide = lightest(targets, perVm);
    if (fleetWide.length === 0 || sourceLoad - loadOf(fleetWide[0]!) < options.minBenefit) break;
    const light = [
      ...new Set([...lightest(clusterTargets.get(clusterOf(source)), perVm), ...fleetWide]),
    ];

    let best: {
      vm: VmSlot;
      target: HostSlot;
      benefit: number;
      value: number;
      spread: number;
    } | null = null;
    for (const vmId of source.vms) {
      const vm = model.vms.get(vmId);
      if (!vm || !vm.active || moved.has(vm.id) || vm.home !== source.index) continue;
      const after = loadOf(source, -vm.cpu, -vm.memoryBytes);
      for (const target of light) {
        if (target === source) continue;
        const arrived = loadOf(target, vm.cpu, vm.memoryBytes);
        const benefit = sourceLoad - Math.max(after, arrived);
        if (benefit < options.minBenefit) continue;
        // What the move buys per second of migration (its memory over the link it crosses).
        const value = benefit / (0.3 + vm.memoryBytes / linkRate(source, target));
        const spread = Math.abs(after - arrived);
        if (best && (value < best.value || (value === best.value && spread >= best.spread)))
          continue;
        if (!placerOf(vm).fits(target)) continue;
        best = { vm, target, benefit, value, spread };
      }
    }
    // Nothing to gain off this host: it is left out as a source (it may still receive).
    if (!best) continue;
    model.move(best.vm, best.target);
    moved.add(best.vm.id);
    moves.push(moveOf(best.vm, source, best.target, best.benefit));
    sources.push(source);
    sources.push(best.target);
    pushTarget(source);
    pushTarget(best.target);
  }
  return { moves, emptied: [] };
}

function consolidate(
  model: PlacementModel,
  hosts: HostSlot[],
  options: RebalanceOptions,
  placerOf: (vm: VmSlot) => VmPlacer,
): { moves: PlannedRebalanceMove[]; emptied: string[] } {
  const below = options.consolidateBelow ?? 0.3;
  const ceiling = options.targetLoad ?? 0.8;
  const moves: PlannedRebalanceMove[] = [];
  const emptied: string[] = [];
  const receivers = new Set<number>();
  const donors = hosts
    .filter((host) => host.vms.size > 0 && loadOf(host) <= below)
    .sort((a, b) => loadOf(a) - loadOf(b) || a.vms.size - b.vms.size || a.index - b.index);
  const donorSet = new Set(donors.map((host) => host.index));
  const emptiedSet = new Set<number>();
  // A host with no VM is free already: filling it would free none.
  const idle = new Set(hosts.filter((host) => host.vms.size === 0).map((host) => host.index));
  // A donor later in the order (more loaded) may take an earlier one's VMs (when every host is
  // light, one must): it then stays, as a receiver.
  const order = new Map(donors.map((host, position) => [host.index, position]));
  for (const donor of donors) {
    if (receivers.has(donor.index)) continue;
    const vms = [...donor.vms]
      .map((id) => model.vms.get(id)!)
      .filter((vm) => vm.home === donor.index)
      .sort((a, b) => b.memoryBytes - a.memoryBytes || b.cpu - a.cpu);
    if (moves.length + vms.length > options.maxMoves) continue;
    // Targets: nearest first (its cluster, its datacenter, then any), within that the busiest (pack);
    // never another host being emptied, never above the ceiling.
    const distance = (host: HostSlot) =>
      host.cluster?.id === donor.cluster?.id
        ? 0
        : host.datacenter?.id === donor.datacenter?.id
          ? 1
          : 2;
    const candidates = hosts
      .filter(
        (host) =>
          host !== donor &&
          !emptiedSet.has(host.index) &&
          !idle.has(host.index) &&
          !(
            donorSet.has(host.index) &&
            !receivers.has(host.index) &&
            order.get(host.index)! <= order.get(donor.index)!
          ),
      )
      .sort((a, b) => distance(a) - distance(b) || loadOf(b) - loadOf(a) || a.index - b.index);
    const tentative: PlannedRebalanceMove[] = [];
    for (const vm of vms) {
      const placer = placerOf(vm);
      const target = candidates.find(
        (host) =>
          loadOf(host, vm.active ? vm.cpu : 0, vm.active ? vm.memoryBytes : 0) <= ceiling &&
          placer.fits(host),
      );
      if (!target) break;
      model.move(vm, target);
      tentative.push(moveOf(vm, donor, target, 0));
    }
    if (tentative.length < vms.length) {
      // Not wholly emptied: no point moving any of its VMs.
      for (const move of tentative.reverse()) model.move(model.vms.get(move.vmId)!, donor);
      continue;
    }
    for (const move of tentative) receivers.add(model.host(move.toHostId).index);
    moves.push(...tentative);
    emptied.push(donor.id);
    emptiedSet.add(donor.index);
  }
  return { moves, emptied };
}
