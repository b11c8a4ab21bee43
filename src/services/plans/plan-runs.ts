/** What applying a plan and evacuating a host share: rescheduling, recording the outcome, failing cleanly. */
import { Type } from 'typebox';
import { isZenithError } from '../../core/errors.js';
import type { TaskRunContext } from '../tasks/task-service.js';
import { scheduleMoves, type Schedule } from './migration-planner.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { PlanDocument, PlanStore, PlanView, PlanWake } from './plan-store.js';
import type { Move } from './migration-planner.js';
import type { PlacementService } from '../placement/placement-service.js';

export type Outcome = NonNullable<PlanDocument['outcome']>;

/** The task parameters every run of a plan carries (applying it, evacuating a host with it). */
export const planRunParamFields = {
  planId: Type.String(),
  /** Who runs it: its migrate tasks are theirs. */
  owner: Type.Object({ id: Type.String(), kind: Type.String(), name: Type.String() }),
  predictedCompletionMs: Type.Number(),
  moves: Type.Optional(Type.Number()),
};

export function scheduleDocument(schedule: Schedule): Omit<PlanDocument, 'options'> {
  return {
    moves: schedule.moves,
    predictedCompletionMs: schedule.predictedCompletionMs,
    peakConcurrency: schedule.peakConcurrency,
    reordered: schedule.reordered,
  };
}

/** The plan's moves still to be made, scheduled on the fleet as it is now; the model is left as it is now. */
export function reschedule(model: PlacementModel, plan: PlanView): Schedule {
  const remaining = plan.moves.filter((move) => {
    const vm = model.vms.get(move.vmId);
    return vm !== undefined && model.hosts[vm.home]?.id === move.fromHostId;
  });
  const schedule = scheduleMoves(model, remaining);
  // Scheduling leaves the model at the end of the plan; execution starts from now.
  for (const move of [...schedule.moves].reverse())
    model.move(model.vms.get(move.vmId)!, model.host(move.fromHostId));
  return schedule;
}

/** The hosts in standby the moves go to, each with the VMs that need its room. */
export function wakesFor(
  model: PlacementModel,
  moves: readonly Move[],
  inStandby: (hostId: string) => boolean,
): PlanWake[] {
  const byHost = new Map<string, string[]>();
  for (const move of moves)
    if (inStandby(move.toHostId))
      byHost.set(move.toHostId, [
        ...(byHost.get(move.toHostId) ?? []),
        model.vms.get(move.vmId)?.name ?? move.vmId,
      ]);
  return [...byHost].map(([hostId, vms]) => ({
    hostId,
    hostName: model.host(hostId).name,
    reason: `in standby; powered on for ${vms.join(', ')}: no host that is on has room`,
  }));
}

/** Powers on, and waits for, the hosts in standby a plan needs, before its moves run. */
export async function wakeHosts(
  placement: PlacementService,
  plan: PlanView,
  context: TaskRunContext,
): Promise<void> {
  for (const wake of plan.wakes ?? []) {
    context.progress({ percent: 1, message: `powering ${wake.hostName} on: ${wake.reason}` });
    await placement.wake(wake.hostId, context.signal);
  }
}

function documentOf(plan: PlanView): PlanDocument {
  const {
    options,
    moves,
    predictedCompletionMs,
    peakConcurrency,
    reordered,
    wakes,
    metrics,
    outcome,
  } = plan;
  return {
    options,
    moves,
    predictedCompletionMs,
    peakConcurrency,
    reordered,
    ...(wakes ? { wakes } : {}),
    ...(metrics ? { metrics } : {}),
    ...(outcome ? { outcome } : {}),
  };
}

export async function recordOutcome(
  plans: PlanStore,
  plan: PlanView,
  outcome: Outcome,
  state: 'applied' | 'failed',
): Promise<void> {
  await plans.update(plan.id, { state, document: { ...documentOf(plan), outcome } });
}

/** Runs a plan's task; if it ends in an error, the plan is left failed with that error, not applying forever. */
export async function failPlanOnError(
  plans: PlanStore,
  context: TaskRunContext,
  run: () => Promise<unknown>,
): Promise<unknown> {
  try {
    return await run();
  } catch (error) {
    const planId = String(context.task.params.planId);
    const plan = await plans.get(planId).catch(() => undefined);
    if (plan?.state === 'applying') {
      const coded = isZenithError(error)
        ? { code: error.code, message: error.message }
        : { code: 'ZEN_DRIVER_ERROR', message: String(error) };
      await plans.update(planId, {
        state: 'failed',
        document: {
          ...documentOf(plan),
          outcome: {
            ...(plan.outcome ?? {
              predictedCompletionMs: plan.predictedCompletionMs,
              actualCompletionMs: 0,
              succeeded: 0,
              failed: 0,
              moves: [],
            }),
            error: coded,
          },
        },
      });
    }
    throw error;
  }
}

export function summary(result: Outcome) {
  return {
    predictedCompletionMs: result.predictedCompletionMs,
    actualCompletionMs: result.actualCompletionMs,
    moves: result.moves.length,
    succeeded: result.succeeded,
    failed: result.failed,
  };
}
