/**
 * Maintenance mode: evacuating a host. Every VM on it is placed by policy on
 * another host (the evacuated host counts as in maintenance), biggest first;
 * if one has nowhere to go the request is refused before anything moves.
 * The moves are scheduled by the migration planner, the host enters
 * `entering-maintenance` (nothing new lands there) and a `host.evacuate` task
 * runs the moves; once the host is empty it is in `maintenance`. VMs that
 * arrived meanwhile, or whose move failed, get one more planned round.
 */
import { Type, type Static } from 'typebox';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Actor } from '../audit/audit-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';
import type { HostModeService } from '../placement/host-modes.js';
import { scheduleMoves, type Move } from './migration-planner.js';
import { placeVm } from '../placement/placement-engine.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { PlacementService } from '../placement/placement-service.js';
import { executeSchedule, executionError, type ExecutionDeps } from './plan-executor.js';
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
import type { PlanStore, PlanView } from './plan-store.js';
import type { HostSlot } from '../placement/slots.js';

const EvacuateParams = Type.Object({
  ...planRunParamFields,
  hostId: Type.String(),
  hostName: Type.String(),
});
type EvacuateParams = Static<typeof EvacuateParams>;

export class EvacuationService {
  readonly #evacuate: TaskKind<EvacuateParams>;

  constructor(
    private readonly deps: ExecutionDeps & {
      plans: PlanStore;
      inventory: InventoryService;
      placement: PlacementService;
      modes: HostModeService;
      tasks: TaskService;
    },
  ) {
    this.#evacuate = deps.tasks.register({
      name: 'host.evacuate',
      params: EvacuateParams,
      run: (context) => failPlanOnError(deps.plans, context, () => this.#run(context)),
      // Moves already made are recognised as done; running it again finishes the rest.
      recover: async () => 'retry',
    });
  }

  async evacuate(hostRef: string, actor: Actor): Promise<{ plan: PlanView; task: Task }> {
    const { inventory, placement, plans, modes, tasks } = this.deps;
    const host = inventory.resolve('host', hostRef);
    if (host.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `host ${host.name} is missing`);
    const running = await this.#evacuationOf(host.id);
    if (running)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `host ${host.name} is being evacuated (task ${running.id})`,
        { taskId: running.id },
      );
    const planned = new Map(modes.modes);
    planned.set(host.id, 'entering-maintenance');
    let model = placement.model({ modes: planned });
    let moves: Move[];
    try {
      moves = evacuationMoves(model, model.host(host.id));
    } catch (error) {
      // No room among the hosts that are on: hosts in standby are powered on for what needs them.
      if (!isZenithError(error) || error.code !== 'ZEN_NO_PLACEMENT' || !placement.canWake)
        throw error;
      model = placement.model({ modes: planned, wakeStandby: true });
      const standby = new Set(
        model.hosts.filter((h) => modes.modeOf(h.id) === 'standby').map((h) => h.index),
      );
      moves = evacuationMoves(model, model.host(host.id), standby);
    }
    const wakes = wakesFor(model, moves, (id) => modes.modeOf(id) === 'standby');
    const schedule = scheduleMoves(model, moves);
    const plan = await plans.insert({
      kind: 'evacuation',
      state: 'applying',
      hostId: host.id,
      createdBy: actor.id,
      document: {
        options: { host: host.id },
        ...scheduleDocument(schedule),
        ...(wakes.length > 0 ? { wakes } : {}),
      },
    });
    await modes.set(host.id, 'entering-maintenance', actor, plan.id);
    const task = await tasks.submit({
      kind: this.#evacuate,
      targetId: host.id,
      params: {
        planId: plan.id,
        hostId: host.id,
        hostName: host.name,
        owner: actor,
        predictedCompletionMs: schedule.predictedCompletionMs,
        moves: schedule.moves.length,
      },
      owner: actor,
    });
    await plans.update(plan.id, { taskId: task.id });
    return { plan: await plans.get(plan.id), task };
  }

  async exitMaintenance(hostRef: string, actor: Actor): Promise<{ hostId: string; mode: string }> {
    const host = this.deps.inventory.resolve('host', hostRef);
    const running = await this.#evacuationOf(host.id);
    if (running)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `host ${host.name} is being evacuated; cancel task ${running.id} first`,
        { taskId: running.id },
      );
    if (this.deps.modes.modeOf(host.id) === 'normal')
      throw new ZenithError('ZEN_INVALID_STATE', `host ${host.name} is not in maintenance`);
    await this.deps.modes.set(host.id, 'normal', actor);
    return { hostId: host.id, mode: 'normal' };
  }

  async #run(context: TaskRunContext<EvacuateParams>): Promise<unknown> {
    const { plans, placement, inventory, modes } = this.deps;
    const params = context.task.params;
    const plan = await plans.get(params.planId);
    await wakeHosts(placement, plan, context);
    let model = placement.model();
    let result = await executeSchedule(
      this.deps,
      model,
      reschedule(model, plan),
      context,
      params.owner,
    );
    model = placement.model();
    const host = model.host(params.hostId);
    if ([...host.vms].some((id) => model.vms.get(id)?.home === host.index)) {
      const again = await executeSchedule(
        this.deps,
        model,
        scheduleMoves(model, evacuationMoves(model, host)),
        context,
        params.owner,
      ).catch((error: unknown) => {
        if (context.signal.aborted) throw error;
        return null;
      });
      if (again) {
        const landed = new Set(
          again.moves.filter((m) => m.state === 'succeeded').map((m) => m.vmId),
        );
        const moves = [...result.moves.filter((m) => !landed.has(m.vmId)), ...again.moves];
        const succeeded = moves.filter(
          (m) => m.state === 'succeeded' || m.state === 'already-there',
        ).length;
        result = {
          ...result,
          actualCompletionMs: result.actualCompletionMs + again.actualCompletionMs,
          moves,
          succeeded,
          failed: moves.length - succeeded,
        };
      }
    }
    const left = inventory.index
      .children(params.hostId)
      .filter((object) => object.kind === 'vm' && object.status === 'present');
    await recordOutcome(plans, plan, result, left.length === 0 ? 'applied' : 'failed');
    if (left.length > 0)
      throw executionError(
        { ...result, failed: Math.max(result.failed, left.length) },
        `${params.hostName} still holds ${left.length} VMs`,
      );
    await modes.set(params.hostId, 'maintenance', params.owner, plan.id);
    return { ...summary(result), hostId: params.hostId, mode: 'maintenance' };
  }

  async #evacuationOf(hostId: string): Promise<Task | undefined> {
    const tasks = await this.deps.tasks.list({ targetId: hostId, limit: 20 });
    return tasks.find(
      (t) => t.kind === 'host.evacuate' && (t.state === 'queued' || t.state === 'running'),
    );
  }
}

/**
 * Every VM on the host, biggest first, to where placement puts it; the model is left as it was.
 * Hosts in `lastResort` (in standby, to be powered on) take a VM only when no other host does.
 */
export function evacuationMoves(
  model: PlacementModel,
  host: HostSlot,
  lastResort: ReadonlySet<number> = new Set(),
): Move[] {
  const vms = [...host.vms]
    .map((id) => model.vms.get(id)!)
    .filter((vm) => vm.home === host.index)
    .sort((a, b) => b.memoryBytes - a.memoryBytes || (a.name < b.name ? -1 : 1));
  const moves: Move[] = [];
  const stuck: Array<{ vm: string; rejectedByReason: Record<string, number> }> = [];
  for (const vm of vms) {
    let decision = placeVm(model, vm, { exclude: new Set([host.index, ...lastResort]) });
    if (!decision.chosen && lastResort.size > 0)
      decision = placeVm(model, vm, { exclude: new Set([host.index]) });
    if (!decision.chosen) {
      stuck.push({ vm: vm.name, rejectedByReason: decision.rejectedByReason });
      continue;
    }
    model.move(vm, model.host(decision.chosen.hostId));
    moves.push({ vmId: vm.id, fromHostId: host.id, toHostId: decision.chosen.hostId });
  }
  for (const move of [...moves].reverse()) model.move(model.vms.get(move.vmId)!, host);
  if (stuck.length > 0)
    throw new ZenithError(
      'ZEN_NO_PLACEMENT',
      `${stuck.length} of ${vms.length} VMs cannot leave ${host.name}: no host takes ${stuck.map((s) => s.vm).join(', ')}`,
      { vms: stuck },
    );
  return moves;
}
