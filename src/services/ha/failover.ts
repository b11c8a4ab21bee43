/**
 * A failover: the durable `ha.failover` task that makes a failed host's VMs run elsewhere.
 *
 * 1. **Fence.** With a BMC: power the machine off and see it read off (MachineService.fence).
 *    Without one: its storage lease must have stopped for longer than the self-fencing deadline
 *    (an agent that lost both the control plane and its storage kills its own VMs by then). A
 *    fence that cannot be confirmed restarts nothing: the failover stays `fencing`, with the
 *    reason, and is tried again.
 * 2. **Restart**, lower order groups before higher ones (a group opens once every VM of the one
 *    before runs, or that one's timeout has passed), highest priority first within a group: each VM is placed by the placement
 *    engine (policies, anti-affinity, capacity; a host in standby is woken when nothing else has
 *    room) and run from its stored portable description with its existing disks. A VM with no
 *    room, or whose disk lock is still held, waits (never forced) and is tried again when the
 *    failover is.
 *
 * Every step is written before it is taken (ha_restarts): a resumed failover skips what is
 * running, and before running a VM again on the host a killed attempt chose, it asks the
 * inventory whether the VM already arrived there. Two copies are also refused by QEMU's image
 * lock on the shared disk.
 */
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { facetOf, type PortableVm } from '../../hypervisors/driver.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { MachineService } from '../machines/machine-service.js';
import { placeVm } from '../placement/placement-engine.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';
import { haOfVm, type EffectiveHa } from './ha-settings.js';
import { startOrder, type Failover, type HaStore, type Restart } from './ha-store.js';

const FailoverParams = Type.Object({
  failoverId: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
});
type FailoverParams = Static<typeof FailoverParams>;

/** What the failover asks of the storage heartbeat (the host's lease). */
export interface LeaseView {
  /**
   * When the heartbeat's current counter was first read (control plane's clock): the host has
   * written nothing since; null when no heartbeat of it was ever read.
   */
  leaseSeenAt(hostId: string): number | null;
  /** Reads the heartbeat again now; true when it advanced since the previous reading. */
  refresh(hostId: string): Promise<boolean>;
  /** The VMs (uuids) the host's agent powered off itself (isolation response), safe to restart. */
  released(hostId: string): string[];
  /** Whether the host answers on its channel now (its VMs as reported are as they are). */
  answering(hostId: string): boolean;
  /** Whether the detector judges the host other than healthy now (suspect, isolated, failed). */
  unwell(hostId: string): boolean;
}

/** The agent writes its heartbeat this often: a write in flight when we last read is allowed for. */
const heartbeatMs = 1000;

export interface FailoverDeps {
  store: HaStore;
  inventory: InventoryService;
  connections: ConnectionService;
  placement: PlacementService;
  machines: MachineService;
  tasks: TaskService;
  events: EventBus;
  audit: AuditService;
  clock: Clock;
  logger: Logger;
  lease: LeaseView;
  actor: () => Actor;
}

export class FailoverRunner {
  readonly kind: TaskKind<FailoverParams>;

  /**
   * VMs placed and not landed yet (vm id → host id): the VMs of one priority level start at once,
   * and each is placed with the room of the ones placed before it taken.
   */
  readonly #placing = new Map<string, string>();

  constructor(private readonly deps: FailoverDeps) {
    this.kind = deps.tasks.register({
      name: 'ha.failover',
      params: FailoverParams,
      run: (context) => this.#run(context),
      // Every step is recorded before it is taken and checked again when resumed.
      recover: () => Promise.resolve('retry'),
    });
  }

  /** Runs (or resumes) a failover as a task of the HA identity. */
  async submit(failover: Failover): Promise<string> {
    const task = await this.deps.tasks.submit({
      kind: this.kind,
      targetId: failover.hostId,
      params: { failoverId: failover.id, hostId: failover.hostId, hostName: failover.hostName },
      owner: this.deps.actor(),
    });
    await this.deps.store.updateFailover(failover.id, { taskId: task.id });
    return task.id;
  }

  async #run(context: TaskRunContext<FailoverParams>): Promise<unknown> {
    const { store } = this.deps;
    const failover = await store.failover(context.task.params.failoverId);
    if (failover.state === 'done' || failover.state === 'failed')
      return { state: failover.state, message: 'finished already' };
    if (failover.fencedAt === null) {
      context.progress({ percent: 5, message: `fencing ${failover.hostName}` });
      const fenced = await this.#fence(failover, context);
      if (!fenced) return { state: 'fencing', restarted: 0 };
    }
    await store.updateFailover(failover.id, { state: 'restarting', error: null });
    await this.#listRestarts(failover);
    const total = (await store.restarts(failover.id)).length;
    const groups = groupsOf(await store.restarts(failover.id));
    // Order groups one after another: a group opens when the one before it is running (all of
    // its VMs), or when that one's timeout has passed since it opened — counted from durable
    // times (the fence, the VMs' runningAt), so a resumed failover keeps the same gates. Within
    // a group, each priority level after the one above it, the VMs of one level at once.
    let opensAt = failover.fencedAt ?? this.deps.clock.now();
    for (const [index, group] of groups.entries()) {
      const timeoutMs = this.#orderTimeoutMs(group);
      for (;;) {
        const current = await this.#current(failover.id, group);
        for (const level of levelsOf(current.filter(unsettled)))
          await Promise.all(level.map((restart) => this.#restartOne(failover, restart, context)));
        const after = await this.#current(failover.id, group);
        const done = (await store.restarts(failover.id)).filter((r) => r.state === 'running');
        context.progress({
          percent: 10 + Math.round((90 * done.length) / Math.max(1, total)),
          message: `${done.length} of ${total} VMs running again`,
        });
        const next = nextGroupOpensAt(after, opensAt, timeoutMs, this.deps.clock.now());
        if (next !== null || index === groups.length - 1) {
          opensAt = next ?? opensAt;
          break;
        }
        await this.#holdLater(failover, groups.slice(index + 1), group, opensAt + timeoutMs);
        await this.deps.clock.sleep(
          Math.max(50, Math.min(2000, opensAt + timeoutMs - this.deps.clock.now())),
          context.signal,
        );
      }
    }
    const final = await store.restarts(failover.id);
    const count = (state: Restart['state']) => final.filter((r) => r.state === state).length;
    const waiting = count('waiting') + count('pending') + count('starting');
    const state = waiting > 0 ? 'waiting' : 'done';
    await store.updateFailover(failover.id, { state, finished: state === 'done' });
    await this.deps.events.publish([
      {
        type: 'ha.failoverFinished',
        objectId: failover.hostId,
        data: {
          name: failover.hostName,
          state,
          restarted: count('running'),
          waiting,
          failed: count('failed'),
        },
      },
    ]);
    return {
      state,
      restarted: count('running'),
      waiting,
      failed: count('failed'),
      skipped: count('skipped'),
    };
  }

  /** Makes sure the host runs nothing any more; false (recorded, with an event) when it cannot. */
  async #fence(failover: Failover, context: TaskRunContext<FailoverParams>): Promise<boolean> {
    const { store, inventory, machines, clock, lease } = this.deps;
    const host = inventory.index.get(failover.hostId);
    const hasBmc = typeof host?.computed['machine.id'] === 'string';
    const reasons: string[] = [];
    if (hasBmc) {
      try {
        await machines.fence(failover.hostId);
        await store.updateFailover(failover.id, { fenceMethod: 'bmc', fencedAt: clock.now() });
        return true;
      } catch (error) {
        reasons.push(`its BMC did not confirm it off: ${messageOf(error)}`);
      }
    } else reasons.push('it has no BMC');
    // Without a BMC's word: its lease must have stopped longer than the self-fencing deadline.
    // The agent kills its VMs once it has been cut off from both the control plane and its
    // storage for selfFenceSeconds: safe from the later of its last word and its last lease write.
    const selfFenceMs = this.#hostSettings(failover.hostId).selfFenceMs;
    const last = lease.leaseSeenAt(failover.hostId);
    if (last !== null) {
      // A BMC that did not confirm is an alarm of its own, even though the lease may fence.
      if (hasBmc)
        await this.#alarm(
          failover,
          `${failover.hostName}'s BMC did not fence it (${reasons.join('; ')}); waiting for its storage lease to be expired past the self-fencing deadline instead`,
        );
      const safeAt = Math.max(last, failover.failedAt) + selfFenceMs + heartbeatMs;
      while (clock.now() < safeAt) {
        context.progress({
          percent: 5,
          message: `waiting for ${failover.hostName}'s lease to be expired ${Math.round(selfFenceMs / 1000)} s (self-fencing)`,
        });
        await clock.sleep(Math.min(1000, safeAt - clock.now()), context.signal);
        if (await lease.refresh(failover.hostId)) {
          // Alive after all (cut off, not dead): this failover ends; isolation takes over.
          const reason = `${failover.hostName} is alive (its storage heartbeat advanced): cut off, not failed; nothing restarted`;
          await this.deps.store.updateFailover(failover.id, {
            state: 'failed',
            error: reason,
            finished: true,
          });
          this.deps.logger.warn({ host: failover.hostName }, reason);
          return false;
        }
      }
      await store.updateFailover(failover.id, { fenceMethod: 'self-fence', fencedAt: clock.now() });
      return true;
    }
    reasons.push('no storage lease of it is known, so its VMs cannot be proved gone');
    return this.#unfenced(failover, reasons);
  }

  async #unfenced(failover: Failover, reasons: string[]): Promise<false> {
    await this.#alarm(failover, `${failover.hostName} cannot be fenced: ${reasons.join('; ')}`);
    return false;
  }

  /** Says why fencing did not happen (yet) on the failover, as an event and in the log. */
  async #alarm(failover: Failover, reason: string): Promise<void> {
    await this.deps.store.updateFailover(failover.id, { state: 'fencing', error: reason });
    await this.deps.events.publish([
      {
        type: 'ha.fenceFailed',
        objectId: failover.hostId,
        data: { name: failover.hostName, failoverId: failover.id, reason },
      },
    ]);
    this.deps.logger.warn({ host: failover.hostName }, reason);
  }

  /** The protected VMs that ran on the host when it failed (recorded once). */
  async #listRestarts(failover: Failover): Promise<void> {
    const vms = this.deps.inventory.index
      .children(failover.hostId)
      .filter((vm) => vm.kind === 'vm' && vm.status === 'present');
    const model = this.deps.placement.model();
    // A host cut off but alive restarts only what its agent powered off itself (released).
    const released =
      failover.fenceMethod === 'released'
        ? new Set(this.deps.lease.released(failover.hostId))
        : null;
    // A host that answers reports its VMs as they are: a released VM started again there since
    // stays (one cut off reports nothing new, and its agent said the VM is gone).
    const answering = this.deps.lease.answering(failover.hostId);
    const protectedVms = vms
      .map((vm) => ({ vm, ha: haOfVm(model, vm.id) }))
      .filter(({ vm, ha }) =>
        released
          ? released.has(String(vm.facts['vm.uuid'])) &&
            ha.protected &&
            !(answering && vm.facts['power.state'] === 'running')
          : ha.protected && vm.facts['power.state'] === 'running',
      );
    await this.deps.store.addRestarts(
      failover.id,
      protectedVms.map(({ vm, ha }) => ({
        vmId: vm.id,
        vmName: vm.name,
        priority: ha.priority,
        restartOrder: ha.restartOrder,
      })),
    );
  }

  /** Runs one VM again elsewhere; true when it runs (or already did). */
  async #restartOne(
    failover: Failover,
    restart: Restart,
    context: TaskRunContext<FailoverParams>,
  ): Promise<boolean> {
    const { store, inventory } = this.deps;
    const update = (patch: Parameters<HaStore['updateRestart']>[2]) =>
      store.updateRestart(failover.id, restart.vmId, patch);
    const vm = inventory.index.get(restart.vmId);
    if (!vm || vm.status !== 'present') {
      await update({ state: 'skipped', reason: 'the VM is gone' });
      return true;
    }
    // An attempt was under way when the control plane stopped: whether it started the VM is known
    // only once that host has answered again (and reported what it runs). Nothing else is tried
    // before: that could run the VM twice.
    if (restart.state === 'starting' && restart.toHostId !== null) {
      const settled = await this.#hostAnswers(restart.toHostId, context.signal);
      if (!settled) {
        const name = inventory.index.get(restart.toHostId)?.name ?? restart.toHostId;
        await this.#wait(
          failover,
          restart,
          `it was being started on ${name} when the control plane stopped, and ${name} does not answer yet; it is tried again once ${name} has said what it runs`,
          'starting',
        );
        return false;
      }
    }
    // Already elsewhere: a previous attempt's answer was lost, or someone started it.
    const where = inventory.index.get(restart.vmId)?.computed['location.hostId'];
    if (where !== failover.hostId && typeof where === 'string') {
      const left = inventory.index.get(failover.hostId)?.connectionId;
      if (left) inventory.handovers.disown(restart.vmId, left);
      await update({
        state: 'running',
        toHostId: where,
        runningAt: this.deps.clock.now(),
        reason: null,
      });
      return true;
    }
    const description = await store.description(restart.vmId);
    if (!description) {
      await update({ state: 'failed', reason: 'no portable description of it was recorded' });
      return false;
    }
    const target = this.#place(vm, failover);
    if ('waiting' in target) {
      await this.#wait(failover, restart, target.waiting);
      return false;
    }
    try {
      return await this.#startThere(failover, restart, description, target, context);
    } finally {
      this.#placing.delete(vm.id);
    }
  }

  async #startThere(
    failover: Failover,
    restart: Restart,
    description: PortableVm,
    target: { hostId: string; wake: boolean },
    context: TaskRunContext<FailoverParams>,
  ): Promise<boolean> {
    const { store, inventory } = this.deps;
    const update = (patch: Parameters<HaStore['updateRestart']>[2]) =>
      store.updateRestart(failover.id, restart.vmId, patch);
    const targetHost = inventory.index.get(target.hostId)!;
    // The host chosen a moment ago may fail to wake or have gone since: the VM waits, the others
    // of its level go on (a rejection here would end the whole failover half-way).
    let portable: ReturnType<typeof facetOf<'portableVms'>>;
    try {
      if (target.wake) {
        context.progress({ percent: 10, message: `powering ${targetHost.name} on (standby)` });
        await this.deps.placement.wake(target.hostId, context.signal);
      }
      portable = facetOf(this.deps.connections.driver(targetHost.connectionId!), 'portableVms');
    } catch (error) {
      if (context.signal.aborted) throw error;
      await this.#wait(failover, restart, `${targetHost.name} cannot take it: ${messageOf(error)}`);
      return false;
    }
    if (!portable) {
      await this.#wait(failover, restart, `${targetHost.name} cannot run VMs from a description`);
      return false;
    }
    // Written before it is tried: a control plane killed now finds the attempt and checks it.
    await update({
      state: 'starting',
      toHostId: target.hostId,
      attempts: restart.attempts + 1,
      startedAt: this.deps.clock.now(),
      reason: null,
    });
    const expected = inventory.locations.expect(restart.vmId, {
      reason: 'failover',
      leftAt: failover.failedAt,
    });
    const release = inventory.handovers.hold(restart.vmId, targetHost.connectionId!);
    let failed = false;
    try {
      const arrived = await portable.runVm(description, { start: true }, context);
      await inventory.applyChanges(targetHost.connectionId!, [arrived]);
    } catch (error) {
      failed = true;
      expected();
      if (isZenithError(error) && error.code === 'ZEN_CONFLICT') {
        // Defined there already: an attempt whose answer was lost. The inventory has it by now.
        const again = inventory.index.get(restart.vmId)?.computed['location.hostId'];
        if (again === target.hostId) {
          await update({ state: 'running', runningAt: this.deps.clock.now() });
          return true;
        }
      }
      await this.#wait(
        failover,
        restart,
        `starting it on ${targetHost.name} failed: ${messageOf(error)}`,
      );
      return false;
    } finally {
      release();
      // An answer lost on the way (a timeout) may hide a start that happened: its report is still
      // the same VM for a while, not a stranger claiming its identity.
      if (failed)
        inventory.handovers.allowUntil(
          restart.vmId,
          targetHost.connectionId!,
          this.deps.clock.now() + 120_000,
        );
    }
    const now = this.deps.clock.now();
    await update({ state: 'running', runningAt: now, reason: null });
    // The failed host, back one day, still has its definition: that is not this VM any more.
    const left = inventory.index.get(failover.hostId)?.connectionId;
    if (left) inventory.handovers.disown(restart.vmId, left);
    await this.deps.audit.append([
      {
        actor: this.deps.actor(),
        action: 'ha.restart',
        targetId: restart.vmId,
        params: { failoverId: failover.id, fromHostId: failover.hostId, toHostId: target.hostId },
        result: 'succeeded',
      },
    ]);
    await this.deps.events.publish([
      {
        type: 'ha.vmRestarted',
        objectId: restart.vmId,
        data: {
          name: restart.vmName,
          failoverId: failover.id,
          fromHostId: failover.hostId,
          toHostId: target.hostId,
          downMs: now - failover.failedAt,
        },
      },
    ]);
    return true;
  }

  /** Waits (up to 60 s) until the host's connection is connected, synced, and so has reported its VMs. */
  async #hostAnswers(hostId: string, signal: AbortSignal): Promise<boolean> {
    const deadline = this.deps.clock.now() + 60_000;
    for (;;) {
      const connectionId = this.deps.inventory.index.get(hostId)?.connectionId;
      if (connectionId && this.deps.connections.connectedIds().includes(connectionId)) return true;
      if (this.deps.clock.now() >= deadline) return false;
      await this.deps.clock.sleep(250, signal);
    }
  }

  async #wait(
    failover: Failover,
    restart: Restart,
    reason: string,
    state: 'waiting' | 'starting' = 'waiting',
  ): Promise<void> {
    // Tried again every few seconds while its group holds the next back: said once, not each time.
    if (restart.state === state && restart.reason === reason) return;
    await this.deps.store.updateRestart(failover.id, restart.vmId, { state, reason });
    await this.deps.events.publish([
      {
        type: 'ha.vmWaiting',
        objectId: restart.vmId,
        data: { name: restart.vmName, failoverId: failover.id, reason },
      },
    ]);
  }

  /** Where placement puts the VM now, off the failed host; a host in standby if none else has room. */
  #place(
    vm: ManagedObject,
    failover: Failover,
  ): { hostId: string; wake: boolean } | { waiting: string } {
    const { placement } = this.deps;
    const attempt = (wakeStandby: boolean) => {
      const model = placement.model(wakeStandby ? { wakeStandby } : {});
      // The VMs placed a moment ago and still starting hold their room already.
      for (const [vmId, hostId] of this.#placing) {
        const placed = model.vms.get(vmId);
        const host = model.hostById.get(hostId);
        if (placed && host && vmId !== vm.id) model.move(placed, host);
      }
      const found = model.vms.get(vm.id);
      if (!found) return null;
      // It runs again from its description: no migration from its (dead) connection.
      const slot = { ...found, fromDescription: true };
      // Not the failed host, nor one the detector does not hear now: a host cut off may still
      // look connected, and a VM sent there would wait for its answer.
      const exclude = new Set(
        model.hosts
          .filter((host) => host.id === failover.hostId || this.deps.lease.unwell(host.id))
          .map((host) => host.index),
      );
      return placeVm(model, slot, { explain: false, exclude });
    };
    const decision = attempt(false);
    if (decision?.chosen) {
      this.#placing.set(vm.id, decision.chosen.hostId);
      return { hostId: decision.chosen.hostId, wake: false };
    }
    if (placement.canWake) {
      const woken = attempt(true);
      if (woken?.chosen) {
        this.#placing.set(vm.id, woken.chosen.hostId);
        return { hostId: woken.chosen.hostId, wake: true };
      }
    }
    const reasons = Object.entries(decision?.rejectedByReason ?? {})
      .map(([reason, hosts]) => `${hosts} host(s): ${reason}`)
      .join('; ');
    return { waiting: `no host can take it now${reasons ? ` (${reasons})` : ''}` };
  }

  /** The group's restarts as stored now. */
  async #current(failoverId: string, group: Restart[]): Promise<Restart[]> {
    const ids = new Set(group.map((r) => r.vmId));
    return (await this.deps.store.restarts(failoverId))
      .filter((r) => ids.has(r.vmId))
      .sort(startOrder);
  }

  /** How long a group holds the next one back: the longest timeout its VMs' settings give. */
  #orderTimeoutMs(group: Restart[]): number {
    const model = this.deps.placement.model();
    return Math.max(0, ...group.map((r) => haOfVm(model, r.vmId).orderTimeoutMs));
  }

  /** Says on the later groups' VMs what they wait for (once: no event every second). */
  async #holdLater(
    failover: Failover,
    later: Restart[][],
    group: Restart[],
    until: number,
  ): Promise<void> {
    const order = group[0]!.restartOrder;
    const reason = `waits for order group ${order} to be running, or until ${new Date(until).toISOString()}`;
    const stored = new Map(
      (await this.deps.store.restarts(failover.id)).map((r) => [r.vmId, r] as const),
    );
    for (const restart of later.flat()) {
      const now = stored.get(restart.vmId);
      if (now?.state === 'pending' && now.reason !== reason)
        await this.deps.store.updateRestart(failover.id, restart.vmId, { reason });
    }
  }

  #hostSettings(hostId: string): EffectiveHa {
    const model = this.deps.placement.model();
    const host = model.hostById.get(hostId);
    return haOfVm(model, null, host);
  }
}

/** Restarts by order group (lower first), each group in start order. */
function groupsOf(restarts: Restart[]): Restart[][] {
  const byOrder = new Map<number, Restart[]>();
  for (const restart of [...restarts].sort(startOrder)) {
    const group = byOrder.get(restart.restartOrder) ?? [];
    group.push(restart);
    byOrder.set(restart.restartOrder, group);
  }
  return [...byOrder.keys()].sort((a, b) => a - b).map((order) => byOrder.get(order)!);
}

/** A group's restarts by priority level, highest first. */
function levelsOf(group: Restart[]): Restart[][] {
  const levels: Restart[][] = [];
  for (const restart of group) {
    const last = levels.at(-1);
    if (last && last[0]!.priority === restart.priority) last.push(restart);
    else levels.push([restart]);
  }
  return levels;
}

/** A restart still to be tried (not running, not given up on). */
function unsettled(restart: Pick<Restart, 'state'>): boolean {
  return restart.state !== 'running' && restart.state !== 'skipped' && restart.state !== 'failed';
}

/**
 * When the order group after this one opens: once every VM of this one is running (or given up
 * on: gone, or no description), when the last of them ran; else once its timeout has passed since
 * it opened. Null: not yet.
 */
export function nextGroupOpensAt(
  group: Pick<Restart, 'state' | 'runningAt'>[],
  opensAt: number,
  timeoutMs: number,
  now: number,
): number | null {
  if (group.every((r) => !unsettled(r)))
    return Math.max(opensAt, ...group.map((r) => r.runningAt ?? opensAt));
  return now >= opensAt + timeoutMs ? opensAt + timeoutMs : null;
}

function messageOf(error: unknown): string {
  return error instanceof ZenithError
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);
}
