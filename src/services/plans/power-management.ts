/**
 * Power management (like vSphere DPM), per scope by policy and off unless a
 * policy enables it (settings.powerManagement): a run consolidates the scope
 * (the rebalancer's consolidate plan, applied), then puts each host left empty
 * in `standby` (nothing new lands there) and powers its machine off through
 * its BMC, confirmed, keeping `minHostsOn` hosts on. When a placement needs
 * room that only a host in standby has, the creation powers that host on and
 * waits for its hypervisor to answer before the VM goes there (wake()). Every
 * step is in the run's result (its explanation) and, as tasks of their own,
 * in the audit trail.
 */
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { Actor } from '../audit/audit-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { MachineService } from '../machines/machine-service.js';
import type { HostModeService } from '../placement/host-modes.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { HostSlot } from '../placement/slots.js';
import {
  mergeSettings,
  type CompiledPolicy,
  type PowerManagementSettings,
} from '../policy/policy-document.js';
import { loadOf } from '../placement/placement-model.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';
import type { PlanService } from './plan-service.js';

const Owner = Type.Object({ id: Type.String(), kind: Type.String(), name: Type.String() });

const RunParams = Type.Object({
  scope: Type.Optional(
    Type.Object({
      kind: Type.Union([Type.Literal('cluster'), Type.Literal('datacenter')]),
      id: Type.String(),
    }),
  ),
  owner: Owner,
});
type RunParams = Static<typeof RunParams>;

export interface PowerManagementStep {
  hostId: string;
  hostName: string;
  /** powered-off, kept-on, skipped, failed */
  outcome: string;
  reason: string;
}

const systemActor: Actor = { id: 'system', kind: 'system', name: 'zenith' };

/** A host above this load makes power management wake a host in standby (DPM's upper target). */
const highLoadOf = (settings: PowerManagementSettings) => settings.highLoad ?? 0.8;
const percent = (load: number) => `${Math.round(load * 100)} %`;

export class PowerManager {
  readonly #kind: TaskKind<RunParams>;

  constructor(
    private readonly deps: {
      inventory: InventoryService;
      placement: PlacementService;
      plans: PlanService;
      hostModes: HostModeService;
      machines: MachineService;
      tasks: TaskService;
      clock: Clock;
      logger: Logger;
    },
  ) {
    this.#kind = deps.tasks.register({
      name: 'host.powerManagement',
      params: RunParams,
      run: (context) => this.#run(context),
      // Every step checks the hosts as they are: running it again is safe.
      recover: () => Promise.resolve('retry'),
    });
  }

  /** Queues a power management run over the scope (everything when absent). */
  request(
    scope: { kind: 'cluster' | 'datacenter'; id: string } | undefined,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    const resolved = scope
      ? { kind: scope.kind, id: this.deps.inventory.resolve(scope.kind, scope.id).id }
      : undefined;
    return this.deps.tasks.submit({
      kind: this.#kind,
      targetId: resolved?.id ?? null,
      params: { ...(resolved ? { scope: resolved } : {}), owner },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  /** A scheduled run (settings.powerManagement.everyMinutes), unless one is queued or running. */
  async scheduled(): Promise<void> {
    const busy = await this.deps.tasks.unfinished(this.#kind);
    if (busy.length > 0) return;
    const task = await this.request(undefined, systemActor);
    this.deps.logger.info({ task: task.id }, 'scheduled power management');
  }

  /** Powers a host in standby on, waits for its hypervisor to answer, and takes it out of standby. */
  async wake(hostId: string, signal: AbortSignal): Promise<void> {
    if (this.deps.hostModes.modeOf(hostId) !== 'standby') return;
    await this.deps.machines.powerAndWait(hostId, 'on', systemActor, {
      signal,
      waitForHypervisor: true,
    });
    await this.deps.hostModes.set(hostId, 'normal', systemActor);
  }

  /**
   * Like DPM's power-on recommendation: when some host that is on runs above its high load and a
   * host in standby could take VMs from it, that one host is powered on (waited for) and the load
   * balanced onto it, in one plan; the run ends there (it consolidates nothing right after).
   * Another run wakes another host if the load stays high. Null when nothing is too busy.
   */
  async #relieve(
    context: TaskRunContext<RunParams>,
    managed: Array<{ slot: HostSlot; settings: PowerManagementSettings }>,
    isOn: (host: HostSlot) => boolean,
  ): Promise<unknown> {
    const { scope, owner } = context.task.params;
    const hot = managed.filter((h) => isOn(h.slot) && loadOf(h.slot) > highLoadOf(h.settings));
    const sleeping = managed
      .map((h) => h.slot)
      .filter((h) => h.mode === 'standby' && !isOn(h))
      .sort((a, b) => b.cpuCapacity - a.cpuCapacity || (a.name < b.name ? -1 : 1));
    if (hot.length === 0 || sleeping.length === 0) return null;
    const why = hot
      .map(
        (h) =>
          `${h.slot.name} at ${percent(loadOf(h.slot))} (high load ${percent(highLoadOf(h.settings))})`,
      )
      .join(', ');
    const steps: PowerManagementStep[] = [];
    for (const candidate of sleeping) {
      context.progress({ percent: 10, message: `balancing onto ${candidate.name} (in standby)` });
      // Planned first, applied only if it uses the host: moves among the hosts that are on are the
      // rebalancer's business, not power management's.
      const { plan } = await this.deps.plans.rebalance(
        {
          mode: 'balance',
          maxMoves: 1000,
          minBenefit: 0.05,
          wakeStandby: new Set([candidate.id]),
          apply: 'recommend',
          ...(scope ? { scope } : {}),
        },
        owner,
      );
      if (!plan.wakes?.length) {
        if (plan.state === 'proposed') await this.deps.plans.discard(plan.id);
        steps.push({
          hostId: candidate.id,
          hostName: candidate.name,
          outcome: 'kept-off',
          reason: `no VM would move there to relieve ${why}`,
        });
        continue;
      }
      const task = await this.deps.plans.apply(plan.id, owner);
      const applied = await this.deps.tasks.waitFor(task.id, context.signal);
      const on = this.deps.hostModes.modeOf(candidate.id) !== 'standby';
      steps.push({
        hostId: candidate.id,
        hostName: candidate.name,
        outcome: on ? 'powered-on' : 'failed',
        reason: on
          ? `${why}: powered on through its BMC and ${plan.moves.length} VM(s) balanced onto the hosts`
          : `${why}: ${applied?.error?.message ?? 'it could not be powered on'}`,
      });
      return { balance: { planId: plan.id, moves: plan.moves.length }, consolidation: null, steps };
    }
    return null;
  }

  #within(scope: RunParams['scope']): (host: HostSlot) => boolean {
    if (!scope) return () => true;
    return scope.kind === 'cluster'
      ? (host) => host.cluster?.id === scope.id
      : (host) => host.datacenter?.id === scope.id;
  }

  async #run(context: TaskRunContext<RunParams>): Promise<unknown> {
    const { scope, owner } = context.task.params;
    const within = this.#within(scope);
    // A host's settings: the global policies', then its datacenter's and cluster's.
    const settingsOf = (host: HostSlot, global: readonly CompiledPolicy[]) =>
      mergeSettings([...global, ...host.policies]).powerManagement;
    const managed = () => {
      const model = this.deps.placement.model();
      return model.hosts
        .filter((h) => within(h) && settingsOf(h, model.policies.global)?.enabled === true)
        .map((slot) => ({ slot, settings: settingsOf(slot, model.policies.global)! }));
    };
    if (managed().length === 0)
      return { consolidation: null, steps: [], message: 'power management is not enabled here' };
    // A host in standby whose hypervisor still answers was left half-done (a run killed between
    // the mode and the power-off): it counts as on, and this run finishes or undoes it.
    const answers = (h: HostSlot) =>
      h.connectionId !== null && this.deps.placement.connectionFacts.isConnected(h.connectionId);
    const isOn = (h: HostSlot) =>
      (h.mode === 'normal' && h.state === 'connected') || (h.mode === 'standby' && answers(h));
    // 0. Hosts above their high load: power one host in standby on and balance onto it.
    const woken = await this.#relieve(context, managed(), isOn);
    if (woken) return woken;
    // 1. Empty what can be emptied, filling no host above its high load.
    context.progress({ percent: 5, message: 'consolidating' });
    const { plan, task } = await this.deps.plans.rebalance(
      {
        mode: 'consolidate',
        maxMoves: 1000,
        minBenefit: 0,
        targetLoad: Math.min(...managed().map((h) => highLoadOf(h.settings))),
        apply: 'automatic',
        ...(scope ? { scope } : {}),
      },
      owner,
    );
    if (task) {
      const applied = await this.deps.tasks.waitFor(task.id, context.signal);
      if (applied.state !== 'succeeded')
        this.deps.logger.warn({ plan: plan.id, task: task.id }, 'consolidation did not finish');
    }
    // 2. Power off the empty hosts, keeping minHostsOn on.
    const steps: PowerManagementStep[] = [];
    const managedNow = managed();
    const hosts = managedNow.map((h) => h.slot);
    const settingsById = new Map(managedNow.map((h) => [h.slot.id, h.settings]));
    const minOn = Math.max(0, ...managedNow.map((h) => h.settings.minHostsOn ?? 1));
    let on = hosts.filter(isOn).length;
    const candidates = hosts
      .filter(isOn)
      .sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
    for (const host of candidates) {
      const step = async (outcome: string, reason: string) => {
        steps.push({ hostId: host.id, hostName: host.name, outcome, reason });
        if (outcome === 'kept-on' && host.mode === 'standby')
          await this.deps.hostModes.set(host.id, 'normal', owner);
      };
      const object = this.deps.inventory.index.get(host.id);
      const vms = this.deps.inventory.index
        .children(host.id)
        .filter((vm) => vm.kind === 'vm' && vm.status === 'present').length;
      if (vms > 0) {
        await step('kept-on', `${vms} VM(s) still on it`);
        continue;
      }
      if (typeof object?.computed['machine.id'] !== 'string') {
        await step('kept-on', 'no BMC: it cannot be powered on again by Zenith');
        continue;
      }
      if (on <= minOn) {
        await step('kept-on', `minHostsOn is ${minOn}`);
        continue;
      }
      const action = settingsById.get(host.id)?.action ?? 'shutdown';
      context.progress({
        percent: 50,
        message: `powering ${host.name} off (${action}) through its BMC`,
      });
      if (host.mode !== 'standby') await this.deps.hostModes.set(host.id, 'standby', owner);
      try {
        await this.deps.machines.powerAndWait(host.id, action, owner, { signal: context.signal });
        on -= 1;
        await step('powered-off', `empty; powered off (${action}) through its BMC, confirmed`);
      } catch (error) {
        await this.deps.hostModes.set(host.id, 'normal', owner);
        await step('failed', error instanceof Error ? error.message : String(error));
      }
    }
    return {
      consolidation: { planId: plan.id, moves: plan.moves.length },
      steps,
    };
  }
}
