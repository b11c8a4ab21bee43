/**
 * Carries out a schedule through the drivers: every move is a `vm.migrate`
 * task of its own (audited, cancellable, with its progress), capped at the
 * bandwidth the planner gave it. Moves start in schedule order as the live
 * model allows — the same gate as the planner: concurrency per host and per
 * plan, the VM on its source, the target able to take it now — so that
 * capacity and anti-affinity hold at every moment even when durations differ
 * from the prediction. Progress reports the moves done against the predicted
 * completion. A failed move does not stop the others; the outcome says which.
 */
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Actor } from '../audit/audit-service.js';
import type { Task, TaskRunContext, TaskService } from '../tasks/task-service.js';
import type { VmActionService } from '../vms/vm-actions.js';
import type { PlannedMove, Schedule } from './migration-planner.js';
import { VmPlacer } from '../placement/placement-engine.js';
import type { PlacementModel } from '../placement/placement-model.js';
import { defaultMigrationSettings, mergeSettings } from '../policy/policy-document.js';
import type { HostSlot, VmSlot } from '../placement/slots.js';

const MiB = 1024 * 1024;

export interface MoveOutcome {
  vmId: string;
  vmName: string;
  fromHostName: string;
  toHostName: string;
  taskId: string | null;
  state: 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'already-there';
  predictedMs: number;
  /** Relative to the start of the execution. */
  startedAtMs: number | null;
  endedAtMs: number | null;
  error?: { code: string; message: string };
}

export interface ExecutionResult {
  predictedCompletionMs: number;
  actualCompletionMs: number;
  succeeded: number;
  failed: number;
  moves: MoveOutcome[];
}

export interface ExecutionDeps {
  tasks: TaskService;
  vms: VmActionService;
  clock: Clock;
}

interface Running {
  move: PlannedMove;
  vm: VmSlot;
  target: HostSlot;
  source: HostSlot;
  outcome: MoveOutcome;
  done: Promise<Running>;
  task: Task;
}

export async function executeSchedule(
  deps: ExecutionDeps,
  model: PlacementModel,
  schedule: Schedule,
  context: TaskRunContext,
  owner: Actor,
): Promise<ExecutionResult> {
  const started = deps.clock.now();
  const maxTotal =
    mergeSettings(model.policies.global).migration?.maxTotal ?? defaultMigrationSettings.maxTotal;
  const moves = [...schedule.moves].sort((a, b) => a.order - b.order);
  const totalWeight = moves.reduce((sum, m) => sum + Math.max(1, m.endMs - m.startMs), 0);
  const outcomes = new Map<PlannedMove, MoveOutcome>();
  const running = new Set<Running>();
  const perHost = new Map<number, number>();
  const placers = new Map<string, VmPlacer>();
  let doneWeight = 0;
  let pending = moves;

  const outcomeOf = (move: PlannedMove): MoveOutcome => {
    let outcome = outcomes.get(move);
    if (!outcome) {
      outcome = {
        vmId: move.vmId,
        vmName: move.vmName,
        fromHostName: move.fromHostName,
        toHostName: move.toHostName,
        taskId: null,
        state: 'skipped',
        predictedMs: move.endMs - move.startMs,
        startedAtMs: null,
        endedAtMs: null,
      };
      outcomes.set(move, outcome);
    }
    return outcome;
  };
  const busy = (host: HostSlot) => perHost.get(host.index) ?? 0;
  const report = (message: string) => {
    const elapsed = deps.clock.now() - started;
    const done = [...outcomes.values()].filter(
      (o) => o.endedAtMs !== null || o.state === 'already-there',
    );
    context.progress({
      percent: moves.length === 0 ? 100 : (doneWeight / totalWeight) * 100,
      message,
      details: {
        movesDone: done.length,
        movesTotal: moves.length,
        movesRunning: running.size,
        movesFailed: done.filter((o) => o.state === 'failed' || o.state === 'cancelled').length,
        elapsedMs: elapsed,
        predictedCompletionMs: schedule.predictedCompletionMs,
        predictedRemainingMs: Math.max(0, schedule.predictedCompletionMs - elapsed),
        // How many the prediction has done by now: ahead of it or behind it, at a glance.
        movesPredictedDone: moves.filter((m) => m.endMs <= elapsed).length,
      },
    });
  };

  /** Why the move cannot start now, or null. */
  const blocker = (move: PlannedMove, vm: VmSlot | undefined, explain: boolean): string | null => {
    const source = model.hostById.get(move.fromHostId);
    const target = model.hostById.get(move.toHostId);
    if (!vm || !source || !target) return 'its VM or a host is gone';
    if (vm.home !== source.index) return `${vm.name} is not on ${source.name}`;
    if (running.size >= maxTotal) return 'the plan runs its most migrations at once';
    if (busy(source) >= source.migration.maxPerHost) return `${source.name} is busy`;
    if (busy(target) >= target.migration.maxPerHost) return `${target.name} is busy`;
    let placer = placers.get(vm.id);
    if (!placer) placers.set(vm.id, (placer = new VmPlacer(model, vm)));
    if (placer.evaluate(target, explain) !== null)
      return placer.reason?.message ?? `${target.name} cannot take ${vm.name} now`;
    return null;
  };

  const start = async (move: PlannedMove, vm: VmSlot): Promise<void> => {
    const source = model.host(move.fromHostId);
    const target = model.host(move.toHostId);
    const outcome = outcomeOf(move);
    outcome.startedAtMs = deps.clock.now() - started;
    let task: Task;
    try {
      task = await deps.vms.request(
        'migrate',
        vm.id,
        {
          targetHostId: target.id,
          maxBandwidthBytesPerSecond: Math.max(MiB, Math.floor(move.rateBytesPerSecond)),
          maxDowntimeMs: Math.min(source.migration.maxDowntimeMs, target.migration.maxDowntimeMs),
        },
        owner,
      );
    } catch (error) {
      outcome.state = 'failed';
      outcome.endedAtMs = outcome.startedAtMs;
      outcome.error = codeOf(error);
      doneWeight += Math.max(1, move.endMs - move.startMs);
      return;
    }
    outcome.taskId = task.id;
    model.beginMove(vm, target);
    perHost.set(source.index, busy(source) + 1);
    perHost.set(target.index, busy(target) + 1);
    const entry: Running = {
      move,
      vm,
      target,
      source,
      outcome,
      task,
      done: undefined as unknown as Promise<Running>,
    };
    entry.done = deps.tasks.waitFor(task.id, context.signal).then(
      (ended) => {
        outcome.state =
          ended.state === 'succeeded' ? 'succeeded' : (ended.state as 'failed' | 'cancelled');
        if (ended.error) outcome.error = ended.error;
        return entry;
      },
      () => entry,
    );
    running.add(entry);
  };

  // Moves whose VM is already where the plan takes it (a retry after a restart): nothing to do.
  pending = pending.filter((move) => {
    const vm = model.vms.get(move.vmId);
    if (!vm || model.hosts[vm.home]?.id !== move.toHostId) return true;
    outcomeOf(move).state = 'already-there';
    doneWeight += Math.max(1, move.endMs - move.startMs);
    return false;
  });
  report('starting');
  try {
    while (pending.length > 0 || running.size > 0) {
      if (context.signal.aborted) break;
      const waiting: PlannedMove[] = [];
      for (const move of pending) {
        const vm = model.vms.get(move.vmId);
        if (blocker(move, vm, false) === null) await start(move, vm!);
        else waiting.push(move);
      }
      pending = waiting;
      if (running.size === 0) {
        for (const move of pending) {
          const outcome = outcomeOf(move);
          outcome.state = 'skipped';
          outcome.error = {
            code: 'ZEN_PLAN_STALE',
            message: blocker(move, model.vms.get(move.vmId), true) ?? 'could not start',
          };
        }
        break;
      }
      report(`${running.size} migrating`);
      const finished = await Promise.race([...running].map((entry) => entry.done));
      running.delete(finished);
      const { outcome, vm, source, target, move } = finished;
      outcome.endedAtMs = deps.clock.now() - started;
      perHost.set(source.index, busy(source) - 1);
      perHost.set(target.index, busy(target) - 1);
      if (outcome.state === 'succeeded') model.finishMove(vm, target);
      else model.abortMove(vm, target);
      doneWeight += Math.max(1, move.endMs - move.startMs);
      report(
        `${vm.name} ${outcome.state === 'succeeded' ? 'moved to' : 'did not reach'} ${target.name}`,
      );
    }
  } finally {
    if (context.signal.aborted)
      for (const entry of running)
        await deps.tasks.cancel(entry.task.id, owner).catch(() => undefined);
  }
  if (context.signal.aborted) throw context.signal.reason;
  const all = moves.map(outcomeOf);
  const actual = deps.clock.now() - started;
  report('done');
  return {
    predictedCompletionMs: schedule.predictedCompletionMs,
    actualCompletionMs: actual,
    succeeded: all.filter((o) => o.state === 'succeeded' || o.state === 'already-there').length,
    failed: all.filter((o) => o.state !== 'succeeded' && o.state !== 'already-there').length,
    moves: all,
  };
}

function codeOf(error: unknown): { code: string; message: string } {
  if (isZenithError(error)) return { code: error.code, message: error.message };
  return {
    code: 'ZEN_DRIVER_ERROR',
    message: error instanceof Error ? error.message : String(error),
  };
}

/** The error a run with failed moves ends with. */
export function executionError(result: ExecutionResult, what: string): ZenithError {
  const first = result.moves.find((m) => m.state !== 'succeeded' && m.state !== 'already-there');
  return new ZenithError(
    'ZEN_DRIVER_ERROR',
    `${what}: ${result.failed} of ${result.moves.length} moves did not complete${first ? ` (first: ${first.vmName} → ${first.toHostName}: ${first.error?.message ?? first.state})` : ''}`,
    { failed: result.failed, moves: result.moves.length },
  );
}
