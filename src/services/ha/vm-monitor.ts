/**
 * VM monitoring: a VM whose QEMU died (`power.stopCause` crashed) or whose guest panicked
 * (guest-panic) is powered on again on the same host, when its effective HA protects it and enables
 * `vmMonitoring` — at most `maxRestarts` times per `windowMinutes`; past that it stays off, says why
 * (GET /ha/vms: monitoring-limit) and an event tells. A VM that shut itself down, or that Zenith, a
 * user or fencing turned off, is never restarted; nor one on a host the failure detector does not
 * call healthy (a failover may be about to run it elsewhere).
 *
 * A stop is the start of the VM's stopped location interval (control plane's clock, stored): each
 * attempt after it is written in the transaction that queues its start task (a `vm.start` task of
 * `zenith-ha`, audited as every task), so a stop is restarted once even across a restart of the
 * control plane or by two replicas, and the restarts counted against the limit are kept.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { StopCause } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { TaskService } from '../tasks/task-service.js';
import type { VmActionService } from '../vms/vm-actions.js';
import type { HaService } from './ha-service.js';
import { HaPolicyFlag, haOfVm } from './ha-settings.js';
import { VmMonitorStore, type MonitorRestart } from './vm-monitor-store.js';
import { PolicyPacedLoop } from './policy-paced-loop.js';

/** The causes VM monitoring restarts; every other stop is somebody's wish. */
const restartable: readonly StopCause[] = ['crashed', 'guest-panic'];

const causeWords: Record<string, string> = {
  crashed: 'its process died',
  'guest-panic': 'its guest panicked',
};

export interface VmMonitorOptions {
  /** How often stopped VMs are looked at (default 1 s). */
  tickMs?: number;
  /** A restart whose start failed is tried again after this (default 10 s), within the limit. */
  retryMs?: number;
}

export class VmMonitor {
  readonly store: VmMonitorStore;
  /** The latest attempt of each VM (the stop it was about, and how it went). */
  #latest = new Map<string, MonitorRestart>();
  /** VMs whose start was refused at once (connection down, …): tried again, logged once. */
  readonly #refused = new Set<string>();
  #loop: PolicyPacedLoop | undefined;
  readonly #options: Required<VmMonitorOptions>;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      logger: Logger;
      inventory: InventoryService;
      placement: PlacementService;
      policies: PolicyService;
      vms: VmActionService;
      tasks: TaskService;
      events: EventBus;
      ha: HaService;
      options?: VmMonitorOptions;
    },
  ) {
    this.store = new VmMonitorStore(deps.store, deps.clock);
    this.#options = {
      tickMs: deps.options?.tickMs ?? 1_000,
      retryMs: deps.options?.retryMs ?? 10_000,
    };
  }

  async start(): Promise<void> {
    this.#latest = await this.store.latest();
    this.deps.ha.vmMonitoring = this;
    this.#loop = new PolicyPacedLoop({
      clock: this.deps.clock,
      logger: this.deps.logger,
      policies: this.deps.policies,
      tickMs: this.#options.tickMs,
      // Idle while no policy turns VM monitoring on and no restart of its is under way.
      idleMs: 60_000,
      failure: 'VM monitoring check failed',
      check: () => this.#tick(),
    });
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }

  /** A VM VM monitoring gave up on (the limit), while it is still off after that stop. */
  statusOf(vmId: string): { reason: string } | null {
    const latest = this.#latest.get(vmId);
    if (latest?.state !== 'limit') return null;
    const open = this.deps.inventory.locations.openInterval(vmId);
    if (open?.powerState !== 'stopped' || open.from !== latest.stoppedAt) return null;
    return { reason: latest.reason ?? 'VM monitoring reached its restart limit' };
  }

  /** One look at the stopped VMs; answers whether there is nothing to do until a policy changes. */
  async #tick(): Promise<boolean> {
    await this.#settleStarts();
    if (!this.#anyEnabled())
      return ![...this.#latest.values()].some((restart) => restart.state === 'restarting');
    const { inventory, clock } = this.deps;
    let model: PlacementModel | undefined;
    let failingOver: Set<string> | undefined;
    for (const cause of restartable)
      for (const vm of inventory.index.withFact('power.stopCause', cause)) {
        if (vm.kind !== 'vm' || vm.status !== 'present' || vm.facts['power.state'] !== 'stopped')
          continue;
        const open = inventory.locations.openInterval(vm.id);
        if (open?.powerState !== 'stopped') continue;
        const latest = this.#latest.get(vm.id);
        const sameStop = latest?.stoppedAt === open.from;
        if (latest && latest.stoppedAt > open.from) continue;
        if (sameStop && latest.state !== 'failed') continue;
        if (sameStop && clock.now() - latest.updatedAt < this.#options.retryMs) continue;
        model ??= this.deps.placement.model();
        const ha = haOfVm(model, vm.id);
        if (!ha.protected || !ha.vmMonitoring.enabled) continue;
        // A stop from before the window (the control plane was away that long): not ours to undo.
        if (clock.now() - open.from > ha.vmMonitoring.windowMs) continue;
        const hostId =
          typeof vm.computed['location.hostId'] === 'string'
            ? vm.computed['location.hostId']
            : null;
        // A host that is not healthy is the failover's: its VMs may be about to run elsewhere.
        const hostState = hostId ? this.deps.ha.hostState(hostId) : undefined;
        if (hostState && hostState !== 'healthy') continue;
        failingOver ??= await this.#failingOver();
        if (failingOver.has(vm.id) || (hostId && failingOver.has(hostId))) continue;
        await this.#restart(
          vm,
          hostId,
          cause,
          open.from,
          sameStop ? latest.attempt + 1 : 1,
          ha.vmMonitoring,
        );
      }
    return false;
  }

  async #restart(
    vm: ManagedObject,
    hostId: string | null,
    cause: StopCause,
    stoppedAt: number,
    attempt: number,
    limits: { maxRestarts: number; windowMs: number },
  ): Promise<void> {
    const { clock, events, logger } = this.deps;
    const windowMinutes = Math.round(limits.windowMs / 60_000);
    const tried = await this.store.triedSince(vm.id, clock.now() - limits.windowMs);
    const base = { vmId: vm.id, stoppedAt, attempt, vmName: vm.name, hostId, cause };
    if (tried >= limits.maxRestarts) {
      const reason = `${causeWords[cause] ?? cause} and it was restarted ${tried} times in the last ${windowMinutes} min (the limit is ${limits.maxRestarts}): left off`;
      const row = await this.store.add({ ...base, state: 'limit', taskId: null, reason });
      this.#latest.set(vm.id, row);
      logger.warn({ vm: vm.name, cause, tried }, 'VM monitoring: restart limit reached, left off');
      await events.publish([
        {
          type: 'ha.vmMonitoringLimit',
          objectId: vm.id,
          data: {
            name: vm.name,
            hostId,
            cause,
            restarts: tried,
            maxRestarts: limits.maxRestarts,
            windowMinutes,
            reason,
          },
        },
      ]);
      return;
    }
    let row: MonitorRestart | undefined;
    try {
      await this.deps.vms.request('start', vm.id, {}, this.deps.ha.actor, undefined, {
        admission: false,
        prepare: async (tx, taskId) => {
          row = await this.store.add({ ...base, state: 'restarting', taskId, reason: null }, tx);
        },
      });
    } catch (error) {
      // Refused before anything was queued (its connection is down, it is not stopped any more):
      // nothing was written, the next check tries again.
      if (!this.#refused.has(vm.id))
        logger.warn({ vm: vm.name, err: error }, 'VM monitoring could not restart a VM yet');
      this.#refused.add(vm.id);
      return;
    }
    this.#refused.delete(vm.id);
    if (row) this.#latest.set(vm.id, row);
    logger.warn(
      { vm: vm.name, cause, attempt, restarts: tried + 1, max: limits.maxRestarts },
      'VM monitoring: restarting a VM',
    );
  }

  /** Start tasks that ended: the attempt is restarted (an event says so) or failed (tried again). */
  async #settleStarts(): Promise<void> {
    for (const restart of this.#latest.values()) {
      if (restart.state !== 'restarting' || !restart.taskId) continue;
      const task = await this.deps.tasks.get(restart.taskId).catch(() => undefined);
      if (task && (task.state === 'queued' || task.state === 'running')) continue;
      if (task?.state === 'succeeded') {
        this.#latest.set(restart.vmId, await this.store.settle(restart, 'restarted', null));
        await this.deps.events.publish([
          {
            type: 'ha.vmMonitorRestarted',
            objectId: restart.vmId,
            data: {
              name: restart.vmName,
              hostId: restart.hostId,
              cause: restart.cause,
              stoppedAt: restart.stoppedAt,
              downMs: (task.endedAt ?? this.deps.clock.now()) - restart.stoppedAt,
              attempt: restart.attempt,
              taskId: restart.taskId,
            },
          },
        ]);
        continue;
      }
      const reason = task?.error?.message ?? 'its start task is gone';
      this.deps.logger.warn({ vm: restart.vmName, reason }, 'VM monitoring: a restart failed');
      this.#latest.set(restart.vmId, await this.store.settle(restart, 'failed', reason));
    }
  }

  /** VMs and hosts a failover is about (their restarts are its). */
  async #failingOver(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (const failover of await this.deps.ha.store.unfinished()) ids.add(failover.hostId);
    for (const restart of await this.deps.ha.store.openRestarts()) ids.add(restart.vmId);
    return ids;
  }

  readonly #monitoringOn = new HaPolicyFlag((ha) => ha.vmMonitoring?.enabled === true);

  #anyEnabled(): boolean {
    return this.#monitoringOn.of(this.deps.policies.index);
  }
}
