/**
 * Migration plans against the live fleet: rebalancing (recommend, or apply at
 * once) and given moves (evacuation is in evacuation-service.ts). A plan is
 * computed and scheduled when asked for, and stored; applying it is a
 * `plan.apply` task that runs the moves as migrate tasks and stores the
 * outcome — predicted against actual — in the plan. A plan whose VMs have
 * moved since is refused with ZEN_PLAN_STALE.
 */
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';
import type { VmActionService } from '../vms/vm-actions.js';
import { scheduleMoves, type Move } from './migration-planner.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { PlacementService } from '../placement/placement-service.js';
import { executeSchedule, executionError } from './plan-executor.js';
import {
  failPlanOnError,
  recordOutcome,
  reschedule,
  scheduleDocument,
  summary,
  wakeHosts,
  wakesFor,
  planRunParamFields,
} from './plan-runs.js';
import type { HostModeService } from '../placement/host-modes.js';
import { PlanStore, type PlanView } from './plan-store.js';
import type { RebalanceScheduleSettings } from '../policy/policy-document.js';
import { planRebalance, type RebalanceMode } from './rebalancer.js';
import type { HostSlot } from '../placement/slots.js';

export interface RebalanceRequest {
  mode: RebalanceMode;
  maxMoves: number;
  minBenefit: number;
  scope?: { kind: 'cluster' | 'datacenter'; id: string };
  consolidateBelow?: number;
  targetLoad?: number;
  /** Hosts in standby count as on (all, or these): moves may go there; applying powers them on. */
  wakeStandby?: boolean | ReadonlySet<string>;
  /** recommend: store the plan for someone to apply; automatic: apply it at once. */
  apply: 'recommend' | 'automatic';
}

const ApplyParams = Type.Object(planRunParamFields);
type ApplyParams = Static<typeof ApplyParams>;

export class PlanService {
  readonly plans: PlanStore;
  readonly #apply: TaskKind<ApplyParams>;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      logger: Logger;
      inventory: InventoryService;
      placement: PlacementService;
      modes: HostModeService;
      tasks: TaskService;
      vms: VmActionService;
    },
  ) {
    this.plans = new PlanStore(deps.store, deps.clock);
    this.#apply = deps.tasks.register({
      name: 'plan.apply',
      params: ApplyParams,
      run: (context) => failPlanOnError(this.plans, context, () => this.#runApply(context)),
      // Moves already made are recognised as done; running it again finishes the rest.
      recover: async () => 'retry',
    });
  }

  async rebalance(
    request: RebalanceRequest,
    actor: Actor,
  ): Promise<{ plan: PlanView; task: Task | null }> {
    const { placement, modes } = this.deps;
    const wakeStandby = placement.canWake ? (request.wakeStandby ?? false) : false;
    const model = placement.model(wakeStandby ? { wakeStandby } : {});
    const within = this.#scope(request.scope);
    const result = planRebalance(model, {
      mode: request.mode,
      maxMoves: request.maxMoves,
      minBenefit: request.minBenefit,
      ...(within ? { within } : {}),
      ...(request.consolidateBelow !== undefined
        ? { consolidateBelow: request.consolidateBelow }
        : {}),
      ...(request.targetLoad !== undefined ? { targetLoad: request.targetLoad } : {}),
    });
    const schedule = scheduleMoves(model, result.moves);
    const benefits = new Map(result.moves.map((m) => [m.vmId, m.benefit]));
    const wakes = wakeStandby
      ? wakesFor(model, schedule.moves, (id) => modes.modeOf(id) === 'standby')
      : [];
    const plan = await this.plans.insert({
      kind: 'rebalance',
      state: 'proposed',
      createdBy: actor.id,
      document: {
        options: {
          ...request,
          ...(wakeStandby instanceof Set ? { wakeStandby: [...wakeStandby] } : {}),
        },
        ...scheduleDocument(schedule),
        moves: schedule.moves.map((m) => ({ ...m, benefit: benefits.get(m.vmId) ?? 0 })),
        ...(wakes.length > 0 ? { wakes } : {}),
        metrics: {
          before: result.before,
          after: result.after,
          hostsEmptied: result.hostsEmptied,
          bytesMoved: result.bytesMoved,
        },
      },
    });
    if (request.apply !== 'automatic' || plan.moves.length === 0) return { plan, task: null };
    const task = await this.apply(plan.id, actor);
    return { plan: await this.plans.get(plan.id), task };
  }

  /** Schedules moves given by hand: `to` by host id or name; each VM from where it is now. */
  async planMoves(moves: Array<{ vm: string; to: string }>, actor: Actor): Promise<PlanView> {
    const model = this.deps.placement.model();
    const resolved: Move[] = moves.map(({ vm, to }) => {
      const object = this.deps.inventory.resolve('vm', vm);
      const target = this.deps.inventory.resolve('host', to);
      const slot = model.vms.get(object.id);
      const from = slot && slot.home >= 0 ? model.hosts[slot.home] : undefined;
      if (!from)
        throw new ZenithError('ZEN_INVALID_STATE', `${object.name} is not on any host`, {
          vm: object.id,
        });
      if (from.id === target.id)
        throw new ZenithError('ZEN_INVALID_STATE', `${object.name} already runs on ${target.name}`);
      return { vmId: object.id, fromHostId: from.id, toHostId: target.id };
    });
    if (new Set(resolved.map((m) => m.vmId)).size !== resolved.length)
      throw new ZenithError('ZEN_BAD_REQUEST', 'each VM may be moved once in a plan');
    const schedule = scheduleMoves(model, resolved);
    return this.plans.insert({
      kind: 'moves',
      state: 'proposed',
      createdBy: actor.id,
      document: { options: { moves }, ...scheduleDocument(schedule) },
    });
  }

  async apply(planId: string, actor: Actor): Promise<Task> {
    const plan = await this.plans.get(planId);
    if (plan.kind === 'evacuation')
      throw new ZenithError('ZEN_INVALID_STATE', 'an evacuation is applied when it is asked for');
    if (plan.state !== 'proposed')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the plan is ${plan.state}; only a proposed plan can be applied`,
        {
          state: plan.state,
        },
      );
    const model = this.deps.placement.model();
    const stale = staleMoves(model, plan, this.deps.modes);
    if (stale.length > 0)
      throw new ZenithError(
        'ZEN_PLAN_STALE',
        `the plan no longer fits the fleet: ${stale.length} of its moves (first: ${stale[0]!.reason}); compute a new plan`,
        { stale },
      );
    if (!(await this.plans.transition(plan.id, 'proposed', 'applying')))
      throw new ZenithError('ZEN_CONFLICT', 'the plan is being applied already');
    let task: Task;
    try {
      task = await this.deps.tasks.submit({
        kind: this.#apply,
        targetId: plan.id,
        params: {
          planId: plan.id,
          owner: actor,
          predictedCompletionMs: plan.predictedCompletionMs,
          moves: plan.moves.length,
        },
        owner: actor,
      });
    } catch (error) {
      await this.plans.transition(plan.id, 'applying', 'proposed');
      throw error;
    }
    await this.plans.update(plan.id, { taskId: task.id });
    return task;
  }

  async discard(planId: string): Promise<PlanView> {
    if (!(await this.plans.transition(planId, 'proposed', 'discarded'))) {
      const plan = await this.plans.get(planId);
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the plan is ${plan.state}; only a proposed plan can be discarded`,
      );
    }
    return this.plans.get(planId);
  }

  /** A scheduled run of the rebalancer (settings.rebalance of the global policies). */
  async scheduledRebalance(settings: RebalanceScheduleSettings, actor: Actor): Promise<void> {
    if ((await this.plans.list({ state: 'applying', limit: 1 })).length > 0) return;
    const { plan, task } = await this.rebalance(
      {
        mode: settings.mode ?? 'balance',
        maxMoves: settings.maxMoves ?? 20,
        minBenefit: settings.minBenefit ?? 0.05,
        apply: settings.automatic ? 'automatic' : 'recommend',
      },
      actor,
    );
    this.deps.logger.info(
      { plan: plan.id, moves: plan.moves.length, task: task?.id ?? null },
      'scheduled rebalancing',
    );
  }

  async #runApply(context: TaskRunContext<ApplyParams>): Promise<unknown> {
    const params = context.task.params;
    const plan = await this.plans.get(params.planId);
    await wakeHosts(this.deps.placement, plan, context);
    const model = this.deps.placement.model();
    const schedule = reschedule(model, plan);
    const result = await executeSchedule(this.deps, model, schedule, context, params.owner);
    await recordOutcome(this.plans, plan, result, result.failed === 0 ? 'applied' : 'failed');
    if (result.failed > 0) throw executionError(result, `plan ${plan.id}`);
    return summary(result);
  }

  #scope(scope: RebalanceRequest['scope']): ((host: HostSlot) => boolean) | undefined {
    if (!scope) return undefined;
    const object = this.deps.inventory.resolve(scope.kind, scope.id);
    return scope.kind === 'cluster'
      ? (host) => host.cluster?.id === object.id
      : (host) => host.datacenter?.id === object.id;
  }
}

function staleMoves(
  model: PlacementModel,
  plan: PlanView,
  modes: HostModeService,
): Array<{ vmName: string; reason: string }> {
  const stale: Array<{ vmName: string; reason: string }> = [];
  // A host in standby the plan powers on first is a target that can take VMs.
  const woken = new Set(
    (plan.wakes ?? [])
      .map((w) => w.hostId)
      .filter(
        (id) => modes.modeOf(id) === 'standby' || model.hostById.get(id)?.state === 'connected',
      ),
  );
  for (const move of plan.moves) {
    const vm = model.vms.get(move.vmId);
    const target = model.hostById.get(move.toHostId);
    if (!vm) stale.push({ vmName: move.vmName, reason: `${move.vmName} is gone` });
    else if (model.hosts[vm.home]?.id !== move.fromHostId)
      stale.push({
        vmName: move.vmName,
        reason: `${move.vmName} is no longer on ${move.fromHostName}`,
      });
    else if (!target || (target.state !== 'connected' && !woken.has(target.id)))
      stale.push({ vmName: move.vmName, reason: `${move.toHostName} cannot take VMs now` });
  }
  return stale;
}
