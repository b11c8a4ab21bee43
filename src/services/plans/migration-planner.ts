/**
 * The migration planner: turns a set of moves into a schedule. It simulates
 * the plan on the placement model, in time:
 *
 * - a move may start only when its VM is on its source, both hosts are under
 *   their concurrent-migration limit (`migration.maxPerHost`), the plan under
 *   `maxTotal`, and the target can take the VM *now* — capacity, hard
 *   affinity, constraints — counting every VM in flight on both its hosts;
 * - running transfers share bandwidth: each host's migration network
 *   (`hostBandwidthBytesPerSecond`, in and out together), and the link between
 *   two clusters or two datacenters when a move crosses one;
 * - a move's bytes come from its memory and dirty rate (pre-copy passes until
 *   the rest fits in `maxDowntimeMs`), plus a fixed set-up time.
 *
 * Moves start in plan order where they can, later ones first where an
 * earlier one must wait. If that greedy order gets stuck, the plan is tried
 * again strictly in order (which is always feasible for a plan whose moves,
 * one at a time, are); if that is stuck too, the plan is refused with
 * ZEN_PLAN_INFEASIBLE naming the moves that wait and why.
 */
import { ZenithError } from '../../core/errors.js';
import { VmPlacer } from '../placement/placement-engine.js';
import { mergeSettings, defaultMigrationSettings } from '../policy/policy-document.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';

/** Connection set-up, device state and switch-over: what a migration costs besides its bytes. */
export const migrationSetupMs = 300;
/** Pre-copy passes QEMU makes at most before it forces the switch-over. */
const maxPasses = 30;

export interface Move {
  vmId: string;
  fromHostId: string;
  toHostId: string;
}

export interface PlannedMove extends Move {
  vmName: string;
  fromHostName: string;
  toHostName: string;
  memoryBytes: number;
  /** The order in which the moves start. */
  order: number;
  /** Predicted, in ms from the start of the plan. */
  startMs: number;
  endMs: number;
  /** Bytes the transfer is expected to send. */
  bytes: number;
  /** The bandwidth it is expected to get, on average over its transfer (its share changes as others start and end). */
  rateBytesPerSecond: number;
  /** False when the guest dirties memory faster than the link carries: it will be throttled. */
  converges: boolean;
}

export interface Schedule {
  moves: PlannedMove[];
  predictedCompletionMs: number;
  /** The most migrations the plan runs at once. */
  peakConcurrency: number;
  /** True when the moves start in another order than given. */
  reordered: boolean;
}

export interface ScheduleOptions {
  /** Concurrent migrations in the whole plan; from the global policies when absent. */
  maxTotal?: number;
}

export interface TransferEstimate {
  bytes: number;
  converges: boolean;
  passes: number;
}

/**
 * What a migration sends: nothing of memory for a stopped VM, its memory once
 * for a suspended or paused one, pre-copy passes for a running one.
 */
export function estimateTransfer(
  vm: VmSlot,
  rateBytesPerSecond: number,
  defaultDirtyBytesPerSecond: number,
  maxDowntimeMs: number,
): TransferEstimate {
  const power = vm.facts.fact('power.state');
  if (power === 'stopped') return { bytes: 0, converges: true, passes: 0 };
  if (power !== 'running') return { bytes: vm.memoryBytes, converges: true, passes: 1 };
  const dirty = vm.dirtyBytesPerSecond ?? defaultDirtyBytesPerSecond;
  if (dirty >= rateBytesPerSecond)
    return { bytes: vm.memoryBytes * 2, converges: false, passes: maxPasses };
  const ratio = dirty / rateBytesPerSecond;
  const lastPass = (rateBytesPerSecond * maxDowntimeMs) / 1000;
  let remaining = vm.memoryBytes;
  let bytes = 0;
  let passes = 0;
  while (passes < maxPasses && remaining > lastPass) {
    bytes += remaining;
    remaining *= ratio;
    passes++;
  }
  return { bytes: bytes + remaining, converges: true, passes: passes + 1 };
}

interface Flight {
  move: Move;
  index: number;
  vm: VmSlot;
  source: HostSlot;
  target: HostSlot;
  link: string | null;
  startMs: number;
  setupEndsMs: number;
  remaining: number;
  bytes: number;
  rate: number;
  converges: boolean;
  startRate: number;
}

/** The link a move crosses, if any: between two clusters of a datacenter, or two datacenters. */
function linkOf(source: HostSlot, target: HostSlot): { key: string; bandwidth: number } | null {
  const sourceDc = source.datacenter?.id ?? null;
  const targetDc = target.datacenter?.id ?? null;
  if (sourceDc !== targetDc) {
    const key = `dc:${[sourceDc, targetDc].sort().join('|')}`;
    return {
      key,
      bandwidth: Math.min(
        source.migration.interDatacenterBandwidthBytesPerSecond,
        target.migration.interDatacenterBandwidthBytesPerSecond,
      ),
    };
  }
  const sourceCluster = source.cluster?.id ?? null;
  const targetCluster = target.cluster?.id ?? null;
  if (sourceCluster === targetCluster) return null;
  return {
    key: `cl:${[sourceCluster, targetCluster].sort().join('|')}`,
    bandwidth: Math.min(
      source.migration.interClusterBandwidthBytesPerSecond,
      target.migration.interClusterBandwidthBytesPerSecond,
    ),
  };
}

/**
 * Schedules the moves on the model, which is left as it is at the end of the
 * plan (every move done). Throws ZEN_PLAN_INFEASIBLE when no order works.
 */
export function scheduleMoves(
  model: PlacementModel,
  moves: readonly Move[],
  options: ScheduleOptions = {},
): Schedule {
  const maxTotal =
    options.maxTotal ??
    mergeSettings(model.policies.global).migration?.maxTotal ??
    defaultMigrationSettings.maxTotal;
  const greedy = simulate(model, moves, maxTotal, false);
  if (greedy.schedule) return greedy.schedule;
  undo(model, greedy.done);
  const strict = simulate(model, moves, maxTotal, true);
  if (strict.schedule) return strict.schedule;
  undo(model, strict.done);
  throw new ZenithError(
    'ZEN_PLAN_INFEASIBLE',
    `the moves cannot be ordered without breaking capacity or affinity: ${strict.stuck.length} of ${moves.length} wait on each other`,
    { waiting: strict.stuck },
  );
}

/** Puts the VMs of completed moves back where they were. */
function undo(model: PlacementModel, done: Flight[]): void {
  for (const flight of [...done].reverse()) model.move(flight.vm, flight.source);
}

interface Outcome {
  schedule: Schedule | null;
  done: Flight[];
  stuck: Array<{ vmName: string; from: string; to: string; reason: string }>;
}

function simulate(
  model: PlacementModel,
  moves: readonly Move[],
  maxTotal: number,
  strict: boolean,
): Outcome {
  const placers = new Map<string, VmPlacer>();
  const placerOf = (vm: VmSlot) => {
    let placer = placers.get(vm.id);
    if (!placer) placers.set(vm.id, (placer = new VmPlacer(model, vm)));
    return placer;
  };
  const pending = moves.map((move, index) => ({ move, index }));
  const running: Flight[] = [];
  const done: Flight[] = [];
  const planned: PlannedMove[] = [];
  const perHost = new Map<number, number>();
  const inFlight = new Set<string>();
  let now = 0;
  let peak = 0;
  let reordered = false;

  const busy = (host: HostSlot) => perHost.get(host.index) ?? 0;
  const adjust = (host: HostSlot, delta: number) => perHost.set(host.index, busy(host) + delta);

  /** Why a move cannot start now, or null when it can. */
  const blocker = (move: Move, explain: boolean): string | null => {
    const vm = model.vms.get(move.vmId);
    const source = model.hostById.get(move.fromHostId);
    const target = model.hostById.get(move.toHostId);
    if (!vm || !source || !target) return 'its VM or a host is no longer known';
    if (inFlight.has(vm.id)) return 'its VM is moving already';
    if (vm.home !== source.index) return `${vm.name} is not on ${source.name} (yet)`;
    if (running.length >= maxTotal) return `the plan runs ${maxTotal} migrations at once`;
    if (busy(source) >= source.migration.maxPerHost)
      return `${source.name} already runs ${busy(source)} migrations`;
    if (busy(target) >= target.migration.maxPerHost)
      return `${target.name} already runs ${busy(target)} migrations`;
    const placer = placerOf(vm);
    if (placer.evaluate(target, explain) !== null)
      return placer.reason?.message ?? `${target.name} cannot take ${vm.name} now`;
    return null;
  };

  const rates = () => {
    const hostLoad = new Map<number, number>();
    const linkLoad = new Map<string, number>();
    const transferring = running.filter((f) => now >= f.setupEndsMs);
    for (const f of transferring) {
      hostLoad.set(f.source.index, (hostLoad.get(f.source.index) ?? 0) + 1);
      hostLoad.set(f.target.index, (hostLoad.get(f.target.index) ?? 0) + 1);
      if (f.link) linkLoad.set(f.link, (linkLoad.get(f.link) ?? 0) + 1);
    }
    for (const f of transferring) f.rate = shareOf(f, hostLoad, linkLoad);
  };

  const start = (entry: { move: Move; index: number }) => {
    const vm = model.vms.get(entry.move.vmId)!;
    const source = model.hostById.get(entry.move.fromHostId)!;
    const target = model.hostById.get(entry.move.toHostId)!;
    const link = linkOf(source, target);
    // The share it would get if it started transferring now.
    const hostLoad = (host: HostSlot) =>
      running.filter((f) => f.source === host || f.target === host).length + 1;
    const linkCount = link ? running.filter((f) => f.link === link.key).length + 1 : 1;
    const startRate = Math.min(
      source.migration.hostBandwidthBytesPerSecond / hostLoad(source),
      target.migration.hostBandwidthBytesPerSecond / hostLoad(target),
      link ? link.bandwidth / linkCount : Infinity,
    );
    const estimate = estimateTransfer(
      vm,
      startRate,
      source.migration.defaultDirtyBytesPerSecond,
      Math.min(source.migration.maxDowntimeMs, target.migration.maxDowntimeMs),
    );
    model.beginMove(vm, target);
    inFlight.add(vm.id);
    adjust(source, 1);
    adjust(target, 1);
    const flight: Flight = {
      move: entry.move,
      index: entry.index,
      vm,
      source,
      target,
      link: link?.key ?? null,
      startMs: now,
      setupEndsMs: now + migrationSetupMs,
      remaining: estimate.bytes,
      bytes: estimate.bytes,
      rate: startRate,
      converges: estimate.converges,
      startRate,
    };
    running.push(flight);
    peak = Math.max(peak, running.length);
  };

  const finish = (flight: Flight) => {
    running.splice(running.indexOf(flight), 1);
    model.finishMove(flight.vm, flight.target);
    inFlight.delete(flight.vm.id);
    adjust(flight.source, -1);
    adjust(flight.target, -1);
    done.push(flight);
    planned.push({
      ...flight.move,
      vmName: flight.vm.name,
      fromHostName: flight.source.name,
      toHostName: flight.target.name,
      memoryBytes: flight.vm.memoryBytes,
      order: 0,
      startMs: Math.round(flight.startMs),
      endMs: Math.round(now),
      bytes: Math.round(flight.bytes),
      rateBytesPerSecond: Math.round(
        flight.bytes > 0 && now > flight.setupEndsMs
          ? flight.bytes / ((now - flight.setupEndsMs) / 1000)
          : flight.startRate,
      ),
      converges: flight.converges,
    });
  };

  for (;;) {
    // Start what can start, in plan order; in strict mode only the first waiting move may.
    for (let i = 0; i < pending.length;) {
      const entry = pending[i]!;
      if (blocker(entry.move, false) === null) {
        if (i > 0) reordered = true;
        start(entry);
        pending.splice(i, 1);
        continue;
      }
      if (strict) break;
      i++;
    }
    if (running.length === 0) {
      if (pending.length === 0) break;
      return {
        schedule: null,
        done,
        stuck: pending.map(({ move }) => ({
          vmName: model.vms.get(move.vmId)?.name ?? move.vmId,
          from: model.hostById.get(move.fromHostId)?.name ?? move.fromHostId,
          to: model.hostById.get(move.toHostId)?.name ?? move.toHostId,
          reason: blocker(move, true) ?? 'waits for another move',
        })),
      };
    }
    rates();
    // The next event: a set-up ends, or a transfer completes.
    let next = Infinity;
    for (const f of running)
      next = Math.min(
        next,
        now < f.setupEndsMs ? f.setupEndsMs : now + (f.remaining / Math.max(f.rate, 1)) * 1000,
      );
    const elapsed = next - now;
    for (const f of running) if (now >= f.setupEndsMs) f.remaining -= (f.rate * elapsed) / 1000;
    now = next;
    for (const f of [...running])
      if (now >= f.setupEndsMs && f.remaining <= Math.max(1, f.bytes * 1e-9)) finish(f);
  }

  const startOrder = [...done].sort((a, b) => a.startMs - b.startMs || a.index - b.index);
  const orderOf = new Map(startOrder.map((flight, order) => [flight.index, order]));
  const byIndex = new Map(done.map((flight, i) => [flight.index, planned[i]!]));
  const scheduled = startOrder.map((flight) => ({
    ...byIndex.get(flight.index)!,
    order: orderOf.get(flight.index)!,
  }));
  return {
    schedule: {
      moves: scheduled,
      predictedCompletionMs: Math.round(now),
      peakConcurrency: peak,
      reordered,
    },
    done,
    stuck: [],
  };
}

function shareOf(
  flight: Flight,
  hostLoad: ReadonlyMap<number, number>,
  linkLoad: ReadonlyMap<string, number>,
): number {
  const { source, target } = flight;
  let rate = Math.min(
    source.migration.hostBandwidthBytesPerSecond / (hostLoad.get(source.index) ?? 1),
    target.migration.hostBandwidthBytesPerSecond / (hostLoad.get(target.index) ?? 1),
  );
  if (flight.link) {
    const link = linkOf(source, target)!;
    rate = Math.min(rate, link.bandwidth / (linkLoad.get(flight.link) ?? 1));
  }
  return rate;
}
