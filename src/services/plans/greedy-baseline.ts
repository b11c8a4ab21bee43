import { LoadHeap } from './load-heap.js';
import { VmPlacer } from '../placement/placement-engine.js';
import type { PlacementModel } from '../placement/placement-model.js';
import {
  eligibleHosts,
  imbalanceOf,
  moveOf,
  type PlannedRebalanceMove,
  type RebalanceResult,
} from './rebalancer.js';
import type { HostSlot } from '../placement/slots.js';

/**
 * The baseline the benchmark compares with: the classic greedy — move the
 * biggest VM of the busiest host to the least loaded host that can take it,
 * again and again, with no threshold and no look at what the move gains.
 */
export function planGreedyBaseline(
  model: PlacementModel,
  maxMoves: number,
  within?: (host: HostSlot) => boolean,
): RebalanceResult {
  const hosts = eligibleHosts(model, within);
  const before = imbalanceOf(hosts);
  const sources = new LoadHeap(true);
  const targets = new LoadHeap(false);
  for (const host of hosts) {
    sources.push(host);
    targets.push(host);
  }
  const moves: PlannedRebalanceMove[] = [];
  const placers = new Map<string, VmPlacer>();
  while (moves.length < maxMoves) {
    const source = sources.pop();
    if (!source) break;
    const biggest = [...source.vms]
      .map((id) => model.vms.get(id)!)
      .filter((vm) => vm.active && vm.home === source.index)
      .sort((a, b) => b.memoryBytes - a.memoryBytes || b.cpu - a.cpu)[0];
    const light: HostSlot[] = [];
    let target: HostSlot | undefined;
    while (biggest && !target && light.length < 64) {
      const host = targets.pop();
      if (!host) break;
      light.push(host);
      let placer = placers.get(biggest.id);
      if (!placer) placers.set(biggest.id, (placer = new VmPlacer(model, biggest)));
      if (host !== source && placer.fits(host)) target = host;
    }
    for (const host of light) targets.push(host);
    if (!biggest || !target) continue;
    model.move(biggest, target);
    moves.push(moveOf(biggest, source, target, 0));
    sources.push(source);
    sources.push(target);
    targets.push(source);
    targets.push(target);
  }
  const after = imbalanceOf(hosts);
  for (const move of [...moves].reverse())
    model.move(model.vms.get(move.vmId)!, model.host(move.fromHostId));
  return {
    mode: 'balance',
    moves,
    before,
    after,
    hostsEmptied: [],
    bytesMoved: moves.reduce((sum, m) => sum + m.memoryBytes, 0),
  };
}
