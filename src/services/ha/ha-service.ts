/**
 * High availability for agent hosts and libvirt hosts: watches each host where a policy enables HA
 * (an agent's channel, pinged every second, and its storage heartbeat; a libvirt daemon's RPC
 * connection, kept alive every second — the only signal of a host without an agent), declares it
 * failed when its signals stop for the detection time, and runs a durable failover (./failover.ts)
 * that fences it and restarts its protected VMs elsewhere. The local QEMU host is not watched: the
 * control plane runs there. Keeps each protected VM's portable description current while its host
 * is up — a restart runs it when the host is gone. Acts as an identity of its own, `zenith-ha`.
 *
 * A host whose channel is silent but whose storage heartbeat advances is isolated, not failed:
 * nothing restarts (its agent applies the isolation response). After the control plane starts,
 * no host is declared failed before the grace period (the hosts report first).
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { facetOf } from '../../hypervisors/driver.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import type { HaAgentSettings } from '../../protocols/agent-channel/ha-values.js';
import type { Store } from '../../store/store.js';
import type { AgentHub } from '../agents/agent-hub.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import { systemActor } from '../identity/system-actor.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { MachineService } from '../machines/machine-service.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { HostSlot } from '../placement/slots.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { TaskService } from '../tasks/task-service.js';
import { FailoverRunner } from './failover.js';
import type { IsolationResponse } from '../policy/policy-document.js';
import { HaPolicyFlag, haOfHost, haOfVm } from './ha-settings.js';
import { HaStore, type Failover, type Restart } from './ha-store.js';
import { HeartbeatReader } from './heartbeat-reader.js';
import { HostWatch, type HostVerdict } from './host-watch.js';
import { MovedAwayDiscards } from './moved-away.js';
import { PolicyPacedLoop } from './policy-paced-loop.js';
import { isVsphereHost, vsphereHaOfHost, vsphereRestartPriority } from './vsphere-ha.js';

export type HaHostState =
  'healthy' | 'suspect' | 'isolated' | 'failed' | 'unprotected' | 'vsphere-ha';

export interface HaHostStatus {
  hostId: string;
  name: string;
  enabled: boolean;
  state: HaHostState;
  since: number | null;
  silentMs: number | null;
  fencing: 'bmc' | 'self-fence' | 'vsphere-ha' | 'none';
  storage: { counter: number; writtenAt: number; readAt: number } | null;
  reason?: string;
  /** A vSphere host: its state as vSphere HA reports it. */
  vsphereState?: string | null;
}

export interface HaVmStatus {
  vmId: string;
  name: string;
  hostId: string | null;
  state: 'protected' | 'unprotected' | 'restarting' | 'waiting' | 'vsphere-ha' | 'monitoring-limit';
  reason: string | null;
  priority: string;
  restartOrder: number;
  describedAt: number | null;
}

export interface HaOptions {
  /** How often hosts are checked (default 500 ms). */
  tickMs?: number;
  /** After a start, no host is declared failed before this (default 10 s). */
  graceMs?: number;
  /** How often descriptions of protected VMs are refreshed when they changed (default 2 s). */
  describeEveryMs?: number;
}

const haIdentityName = 'zenith-ha';

/** How long the loop sleeps while nothing enables HA and no failover is open (a policy change wakes it). */
const idleMs = 60_000;

export class HaService {
  readonly store: HaStore;
  readonly failovers: FailoverRunner;
  readonly #watches = new Map<string, HostWatch>();
  readonly #verdicts = new Map<string, HostVerdict>();
  /** connection id → agent id (agent connections only). */
  #agentIds = new Map<string, string>();
  readonly #heartbeats: HeartbeatReader;
  #agentIdsAt = 0;
  #actor: Actor = { id: 'system', kind: 'system', name: haIdentityName };
  #startedAt = 0;
  #lastDescribe = 0;
  #lastRetry = 0;
  /** What each agent link was last told to watch (a new link after a reconnect is told again). */
  readonly #configured = new WeakMap<AgentLink, string>();
  /** Hosts back after a failover discard the VMs that moved away (moved-away.ts). */
  readonly #movedAway: MovedAwayDiscards;
  #loop: PolicyPacedLoop | undefined;
  readonly #options: Required<HaOptions>;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      logger: Logger;
      inventory: InventoryService;
      connections: ConnectionService;
      agentHub: AgentHub;
      placement: PlacementService;
      policies: PolicyService;
      machines: MachineService;
      tasks: TaskService;
      events: EventBus;
      audit: AuditService;
      identities: IdentityService;
      options?: HaOptions;
    },
  ) {
    this.#options = {
      tickMs: deps.options?.tickMs ?? 500,
      graceMs: deps.options?.graceMs ?? 10_000,
      describeEveryMs: deps.options?.describeEveryMs ?? 2_000,
    };
    this.store = new HaStore(deps.store, deps.clock);
    this.#heartbeats = new HeartbeatReader(deps);
    this.#movedAway = new MovedAwayDiscards({ ...deps, store: this.store });
    this.failovers = new FailoverRunner({
      store: this.store,
      inventory: deps.inventory,
      connections: deps.connections,
      placement: deps.placement,
      machines: deps.machines,
      tasks: deps.tasks,
      events: deps.events,
      audit: deps.audit,
      clock: deps.clock,
      logger: deps.logger.child({ room: 'ha' }),
      actor: () => this.#actor,
      lease: {
        leaseSeenAt: (hostId) => this.#watches.get(hostId)?.counterSeenAt ?? null,
        refresh: async (hostId) => {
          const host = this.deps.inventory.index.get(hostId);
          const watch = this.#watches.get(hostId);
          if (!host || !watch) return false;
          const before = watch.lastStorageAdvance;
          await this.#heartbeats.read(this.deps.placement.model(), this.#agentIds, true);
          watch.observe(
            this.deps.clock.now(),
            {
              channelSilentMs: null,
              storageCounter: this.#heartbeats.of(host.name)?.counter ?? null,
              storageReadAt: this.#heartbeats.readAt,
            },
            0,
          );
          return watch.lastStorageAdvance !== before;
        },
        answering: (hostId) => this.#answering(hostId),
        unwell: (hostId) => {
          const verdict = this.#verdicts.get(hostId);
          return verdict !== undefined && verdict.state !== 'healthy';
        },
        released: (hostId) => {
          const host = this.deps.inventory.index.get(hostId);
          return host ? (this.#heartbeats.of(host.name)?.released ?? []) : [];
        },
      },
    });
  }

  /** VM monitoring (./vm-monitor.ts), when built: a VM it gave up on is shown so, with why. */
  vmMonitoring: { statusOf(vmId: string): { reason: string } | null } | undefined;

  /** The identity HA acts as (VM monitoring's restarts are its too). */
  get actor(): Actor {
    return this.#actor;
  }

  /** The failure detector's verdict on a host HA watches (undefined: not watched). */
  hostState(hostId: string): HostVerdict['state'] | undefined {
    return this.#verdicts.get(hostId)?.state;
  }

  /** Loads what was kept, takes its identity, and starts watching (the grace period starts now). */
  async start(): Promise<void> {
    await this.store.load();
    this.#actor = await systemActor(
      this.deps.identities,
      haIdentityName,
      'high availability (restarts the VMs of failed hosts)',
    );
    this.#startedAt = this.deps.clock.now();
    this.deps.agentHub.probeEvery(1000);
    this.#loop = new PolicyPacedLoop({
      clock: this.deps.clock,
      logger: this.deps.logger,
      policies: this.deps.policies,
      tickMs: this.#options.tickMs,
      // Idle while no policy enables HA and no failover is open: nothing is watched.
      idleMs,
      failure: 'high availability check failed',
      check: () => this.#tick(),
    });
  }

  /**
   * Before the connections start after a restart: a restart that was under way may have started
   * the VM where it was going, and that host reports it when it reconnects — the same VM (its
   * identity moves there, its location says failover), not a stranger claiming its UUID.
   */
  async allowInterruptedRestarts(until: number): Promise<void> {
    // The hosts VMs failed over away from: their stale definitions are not the VMs.
    for (const { vmId, hostId } of await this.store.movedAway()) {
      const connectionId = this.deps.inventory.index.get(hostId)?.connectionId;
      const vm = this.deps.inventory.index.get(vmId);
      if (connectionId && vm && vm.connectionId !== connectionId)
        this.deps.inventory.handovers.disown(vmId, connectionId);
    }
    const failovers = new Map((await this.store.unfinished()).map((f) => [f.id, f]));
    for (const restart of await this.store.openRestarts()) {
      const failover = failovers.get(restart.failoverId);
      const target = restart.toHostId ? this.deps.inventory.index.get(restart.toHostId) : undefined;
      if (!failover || !target?.connectionId || restart.state === 'pending') continue;
      this.deps.inventory.handovers.allowUntil(restart.vmId, target.connectionId, until);
      this.deps.inventory.locations.expect(restart.vmId, {
        reason: 'failover',
        leftAt: failover.failedAt,
      });
    }
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
    await this.#describing;
    await this.#agentCalls;
  }

  /** One look at the hosts; answers whether there is nothing to do until a policy changes. */
  async #tick(): Promise<boolean> {
    const { clock, placement } = this.deps;
    const now = clock.now();
    if (now - this.#lastRetry >= 3_000) {
      this.#lastRetry = now;
      this.#openFailovers = await this.#resumeFailovers();
    }
    // Nothing to watch until a policy enables HA somewhere (the model is not built for nothing).
    if (!this.#anyEnabled()) return this.#openFailovers === 0;
    const model = placement.model();
    await this.#refreshAgentIds(now);
    await this.#heartbeats.read(model, this.#agentIds, false);
    // Calls to agents beside the loop, one round at a time: an agent cut off right then answers
    // only at the call's deadline, and the verdicts must not wait for it.
    if (!this.#agentCalls)
      this.#agentCalls = (async () => {
        await this.#configureAgents(model);
        await this.#movedAway.run(now, this.#agentIds, (hostId) => this.#answering(hostId));
      })()
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'high availability calls to agents failed'),
        )
        .finally(() => {
          this.#agentCalls = undefined;
        });
    for (const host of model.hosts) {
      const object = host.object;
      const ha = haOfHost(model, host);
      const channel = this.#channelOf(host.connectionId);
      if (!ha.enabled || !channel) {
        this.#verdicts.delete(host.id);
        continue;
      }
      let watch = this.#watches.get(host.id);
      if (!watch) this.#watches.set(host.id, (watch = new HostWatch(this.#startedAt)));
      const silent = this.#silentMs(channel);
      const counter = this.#heartbeats.of(object.name)?.counter ?? null;
      const verdict = watch.observe(
        now,
        {
          channelSilentMs: silent,
          storageCounter: counter,
          storageReadAt: this.#heartbeats.readAt,
        },
        ha.detectionMs,
      );
      await this.#transition(model, object, this.#verdicts.get(host.id), verdict, now);
      this.#verdicts.set(host.id, verdict);
    }
    // Beside the loop, one round at a time: a description asks the VM's host, and a host cut off
    // right then answers only at the call's deadline — the verdicts must not wait for it.
    // Every describeEveryMs for VMs that changed; at once (each tick) for a protected VM never
    // described yet, so that one started and lost soon after is still restarted.
    if (
      !this.#describing &&
      (now - this.#lastDescribe >= this.#options.describeEveryMs || this.#undescribed(model, now))
    ) {
      this.#lastDescribe = now;
      this.#describing = this.#describeProtected(model)
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'describing protected VMs failed'),
        )
        .finally(() => {
          this.#describing = undefined;
        });
    }
    return false;
  }

  /** Failovers not finished at the last look (-1: not looked yet). */
  #openFailovers = -1;

  /** The round of descriptions under way, if any. */
  #describing: Promise<void> | undefined;

  /** The round of configuration and discard calls to agents under way, if any. */
  #agentCalls: Promise<void> | undefined;

  /** Whether the detector last judged the host healthy (it answers on its channel). */
  #answering(hostId: string): boolean {
    return this.#verdicts.get(hostId)?.state === 'healthy';
  }

  readonly #haOn = new HaPolicyFlag((ha) => ha.enabled === true);

  #anyEnabled(): boolean {
    return this.#haOn.of(this.deps.policies.index);
  }

  async #transition(
    model: PlacementModel,
    host: ManagedObject,
    before: HostVerdict | undefined,
    verdict: HostVerdict,
    now: number,
  ): Promise<void> {
    const { events } = this.deps;
    if (verdict.state === 'failed') {
      if (now < this.#startedAt + this.#options.graceMs) return;
      // A failover restarts VMs: a host with no protected VM running on it needs none.
      const running = this.deps.inventory.index
        .children(host.id)
        .filter(
          (vm) =>
            vm.kind === 'vm' &&
            vm.status === 'present' &&
            vm.facts['power.state'] === 'running' &&
            haOfVm(model, vm.id).protected,
        );
      // Declared once per failure (a host that comes back and fails again gets a new failover):
      // checked before the store, which a dead host would otherwise be asked about twice a second.
      // A VM may land on the host after that: a live migration to it whose switch-over was done
      // just before it failed is left to it. Such VMs get a failover of their own, once.
      const declared = this.#declared.get(host.id);
      if (declared && running.every((vm) => declared.has(vm.id))) return;
      const open = (await this.store.unfinished()).find((f) => f.hostId === host.id);
      if (open) return;
      this.#declared.set(host.id, new Set([...(declared ?? []), ...running.map((vm) => vm.id)]));
      if (running.length === 0) {
        this.deps.logger.warn({ host: host.name }, 'host failed; no protected VM ran on it');
        return;
      }
      const failover = await this.store.createFailover({
        hostId: host.id,
        hostName: host.name,
        failedAt: verdict.since,
      });
      this.deps.logger.warn(
        { host: host.name, failover: failover.id, silentMs: now - verdict.since },
        'host failed: failing its VMs over',
      );
      await events.publish([
        {
          type: 'ha.hostFailed',
          objectId: host.id,
          data: { name: host.name, failedAt: verdict.since, failoverId: failover.id },
        },
      ]);
      await this.failovers.submit(failover);
      return;
    }
    if (verdict.state === 'isolated') {
      if (before?.state !== 'isolated')
        await events.publish([
          {
            type: 'ha.hostIsolated',
            objectId: host.id,
            data: { name: host.name, since: verdict.since },
          },
        ]);
      await this.#failOverReleased(host, verdict.since, now);
    }
    if (verdict.state === 'healthy') {
      if (before && (before.state === 'failed' || before.state === 'isolated'))
        await events.publish([
          { type: 'ha.hostRecovered', objectId: host.id, data: { name: host.name } },
        ]);
      this.#declared.delete(host.id);
      await this.#settleReleased(host, now);
    }
  }

  /**
   * A host cut off but alive: nothing of it restarts, except the VMs its agent powered off itself
   * (isolation response) and lists as released in its storage heartbeat — they are safe to run
   * elsewhere, and do, in a failover of their own.
   */
  /**
   * The VMs the host's agent turned off (released) that are still on it, protected, and so to run
   * elsewhere; of a host that answers, not those started again there since (it reports its VMs as
   * they are; one cut off reports nothing new, and its agent said they are gone).
   */
  #releasedHere(host: ManagedObject, answering: boolean): ManagedObject[] {
    const released = new Set(this.#heartbeats.of(host.name)?.released ?? []);
    if (released.size === 0) return [];
    const model = this.deps.placement.model();
    return this.deps.inventory.index
      .children(host.id)
      .filter(
        (vm) =>
          vm.kind === 'vm' &&
          vm.status === 'present' &&
          released.has(String(vm.facts['vm.uuid'])) &&
          !(answering && vm.facts['power.state'] === 'running') &&
          haOfVm(model, vm.id).protected,
      );
  }

  async #failOverReleased(
    host: ManagedObject,
    since: number,
    now: number,
    answering = false,
  ): Promise<void> {
    const here = this.#releasedHere(host, answering);
    if (here.length === 0) return;
    if ((await this.store.unfinished()).some((f) => f.hostId === host.id)) return;
    const failover = await this.store.createFailover({
      hostId: host.id,
      hostName: host.name,
      failedAt: since,
      fenced: { method: 'released', at: now },
    });
    this.deps.logger.warn(
      { host: host.name, failover: failover.id, released: here.map((vm) => vm.name) },
      'a host released VMs: restarting them elsewhere',
    );
    await this.failovers.submit(failover);
  }

  /**
   * A host that answers again (isolated, or self-fenced a moment by a stall) may list VMs it turned
   * off: those still on it, off and protected run again elsewhere (a failover of its released VMs);
   * its agent is told to forget the others (moved away, started again there, not protected).
   */
  async #settleReleased(host: ManagedObject, now: number): Promise<void> {
    const released = this.#heartbeats.of(host.name)?.released ?? [];
    if (released.length === 0) return;
    if (now - (this.#releasedCheckedAt.get(host.id) ?? 0) < 3_000) return;
    this.#releasedCheckedAt.set(host.id, now);
    const keep = new Set(this.#releasedHere(host, true).map((vm) => String(vm.facts['vm.uuid'])));
    const done = released.filter((uuid) => !keep.has(uuid));
    if (done.length > 0) {
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      const link = agentId ? this.deps.agentHub.link(agentId) : undefined;
      if (link?.connected && link.supports('clearReleased'))
        await link
          .call('clearReleased', [done], { timeoutMs: 2000 })
          .catch((error: unknown) =>
            this.deps.logger.warn({ err: error, host: host.name }, 'clearing released VMs failed'),
          );
    }
    if (keep.size > 0) await this.#failOverReleased(host, now, now, true);
  }

  readonly #releasedCheckedAt = new Map<string, number>();

  /** When each unfinished failover was last submitted again. */
  readonly #resumedAt = new Map<string, number>();

  /** Hosts declared failed since they last answered, with the VMs their failovers took. */
  readonly #declared = new Map<string, Set<string>>();

  /** Failovers left fencing or waiting (their task over): tried again, as capacity may be back. */
  /** Takes up the failovers left unfinished; answers how many there are. */
  async #resumeFailovers(): Promise<number> {
    const now = this.deps.clock.now();
    const unfinished = await this.store.unfinished();
    for (const failover of unfinished) {
      // A host that could not be fenced and answers again ran its VMs all along, or they are off:
      // nothing was restarted, and nothing is to be now.
      const recovered =
        failover.state === 'fencing' &&
        failover.fencedAt === null &&
        this.#verdicts.get(failover.hostId)?.state === 'healthy';
      // One that cannot be fenced is tried again every 15 s (each try says why, as an event).
      const every = failover.state === 'fencing' && !recovered ? 15_000 : 3_000;
      if (now - (this.#resumedAt.get(failover.id) ?? 0) < every) continue;
      this.#resumedAt.set(failover.id, now);
      if (failover.taskId) {
        const task = await this.deps.tasks.get(failover.taskId).catch(() => undefined);
        if (task && (task.state === 'queued' || task.state === 'running')) continue;
      }
      if (recovered) await this.#endUnfenced(failover);
      else await this.failovers.submit(failover);
    }
    return unfinished.length;
  }

  /** Ends a failover whose host answered again before it could be fenced (nothing restarted). */
  async #endUnfenced(failover: Failover): Promise<void> {
    const reason = `${failover.hostName} answered again before it could be fenced: nothing was restarted, its VMs are as it reports them`;
    await this.store.updateFailover(failover.id, {
      state: 'failed',
      error: reason,
      finished: true,
    });
    this.deps.logger.warn({ host: failover.hostName, failover: failover.id }, reason);
    await this.deps.events.publish([
      {
        type: 'ha.failoverFinished',
        objectId: failover.hostId,
        data: { name: failover.hostName, state: 'failed', restarted: 0, waiting: 0, failed: 0 },
      },
    ]);
  }

  /** When describing a VM last failed: it is tried again at the round's pace, not every tick. */
  readonly #describeFailedAt = new Map<string, number>();

  /** Whether a protected VM on a healthy host, of a family that describes VMs, has no description yet. */
  #undescribed(model: PlacementModel, now: number): boolean {
    for (const slot of model.vms.values()) {
      const vm = slot.object;
      if (!vm || vm.status !== 'present' || slot.home < 0 || !vm.externalId || !vm.connectionId)
        continue;
      if (this.#verdicts.get(model.hosts[slot.home]!.id)?.state !== 'healthy') continue;
      if (this.store.describedAt(vm.id) !== null || !haOfVm(model, vm.id).protected) continue;
      const failed = this.#describeFailedAt.get(vm.id);
      if (failed !== undefined && now - failed < this.#options.describeEveryMs) continue;
      let driver;
      try {
        driver = this.deps.connections.driver(vm.connectionId);
      } catch {
        continue;
      }
      if (facetOf(driver, 'portableVms')) return true;
    }
    return false;
  }

  /** Descriptions of protected VMs on hosts that answer, taken again when the VM changed. */
  async #describeProtected(model: PlacementModel): Promise<void> {
    const { inventory, connections } = this.deps;
    let budget = 8;
    for (const slot of model.vms.values()) {
      if (budget === 0) break;
      const vm = slot.object;
      if (!vm || vm.status !== 'present' || slot.home < 0 || !vm.connectionId || !vm.externalId)
        continue;
      const host = model.hosts[slot.home]!;
      if (this.#verdicts.get(host.id)?.state !== 'healthy') continue;
      if (!haOfVm(model, vm.id).protected) continue;
      const describedAt = this.store.describedAt(vm.id);
      if (describedAt !== null && describedAt >= vm.updatedAt) continue;
      let driver;
      try {
        driver = connections.driver(vm.connectionId);
      } catch {
        continue;
      }
      const portable = facetOf(driver, 'portableVms');
      if (!portable) continue;
      budget -= 1;
      try {
        const description = await portable.describeVm(vm.externalId);
        // The VM may have moved while it was described: keep it only if it is still there.
        if (inventory.index.get(vm.id)?.connectionId === vm.connectionId)
          await this.store.putDescription(vm.id, host.id, description);
        this.#describeFailedAt.delete(vm.id);
      } catch (error) {
        this.#describeFailedAt.set(vm.id, this.deps.clock.now());
        this.deps.logger.warn({ err: error, vm: vm.name }, 'describing a protected VM failed');
      }
    }
  }

  /** Tells each agent of an HA host what to watch (isolation response, self-fencing), once per link. */
  async #configureAgents(model: PlacementModel): Promise<void> {
    for (const host of model.hosts) {
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      const link = agentId ? this.deps.agentHub.link(agentId) : undefined;
      if (!link?.connected || !link.supports('configureHa')) continue;
      const ha = haOfHost(model, host);
      // A VM's own settings (its group's, its own) may answer isolation otherwise.
      const vmIsolationResponses: Record<string, IsolationResponse> = {};
      for (const slot of model.vms.values()) {
        if (slot.home !== host.index) continue;
        const uuid = slot.object?.facts['vm.uuid'];
        const response = haOfVm(model, slot.id, host).isolationResponse;
        if (typeof uuid === 'string' && response !== ha.isolationResponse)
          vmIsolationResponses[uuid] = response;
      }
      const settings: HaAgentSettings = {
        enabled: ha.enabled,
        isolationResponse: ha.isolationResponse,
        ...(Object.keys(vmIsolationResponses).length > 0 ? { vmIsolationResponses } : {}),
        isolationSeconds: ha.detectionMs / 1000,
        selfFenceSeconds: ha.selfFenceMs / 1000,
        heartbeatMs: 1000,
      };
      const wanted = JSON.stringify(settings);
      const told = this.#configured.get(link);
      if (told === wanted || (told === undefined && !ha.enabled)) continue;
      try {
        await link.call('configureHa', [settings], { timeoutMs: 5000 });
        this.#configured.set(link, wanted);
      } catch (error) {
        this.deps.logger.warn({ err: error, host: host.name }, 'configuring HA on an agent failed');
      }
    }
  }

  async #refreshAgentIds(now: number): Promise<void> {
    if (now - this.#agentIdsAt < 5_000 && this.#agentIds.size > 0) return;
    this.#agentIdsAt = now;
    const ids = new Map<string, string>();
    const types = new Map<string, string>();
    for (const connection of await this.deps.connections.list()) {
      types.set(connection.id, connection.type);
      if (connection.type === 'agent' && typeof connection.settings.agentId === 'string')
        ids.set(connection.id, connection.settings.agentId);
    }
    this.#agentIds = ids;
    this.#connectionTypes = types;
  }

  /** connection id → its type (the local QEMU host's is `qemu`). */
  #connectionTypes = new Map<string, string>();

  /**
   * How a host is heard: its agent's channel, or — for a host without an agent — its connection's
   * own liveness (a libvirt daemon's RPC connection, kept alive each second). None: not watched.
   */
  #channelOf(
    connectionId: string | null,
  ): { agentId: string } | { connectionId: string } | undefined {
    if (!connectionId) return undefined;
    const agentId = this.#agentIds.get(connectionId);
    if (agentId) return { agentId };
    // Known also while it is down (what it could do when it last answered).
    return this.deps.connections.knownAbilities(connectionId)?.liveness
      ? { connectionId }
      : undefined;
  }

  /** ms since the host was last heard on its channel; null while there is no channel. */
  #silentMs(channel: { agentId: string } | { connectionId: string }): number | null {
    if ('agentId' in channel) return this.deps.agentHub.silentMs(channel.agentId);
    try {
      const liveness = facetOf(this.deps.connections.driver(channel.connectionId), 'liveness');
      return liveness ? liveness.silentMs() : null;
    } catch {
      return null; // not connected now: silent since it was last heard
    }
  }

  /** Why a host HA is on for is not watched. */
  #unwatchedReason(host: HostSlot): string {
    if (host.state === 'bare-metal')
      return 'a physical machine as its BMC sees it: HA watches the hypervisor host running on it';
    if (host.connectionId && this.#connectionTypes.get(host.connectionId) === 'qemu')
      return "the control plane runs on this host: its failure is the control plane's own, and nothing is left to restart its VMs (VM monitoring covers a VM whose QEMU died)";
    return 'only hosts with a Zenith agent and libvirt hosts are watched';
  }

  /** Each host's HA state now (hosts `visible` says the caller may read). */
  hostStatus(
    visible: (id: string) => boolean,
    model: PlacementModel = this.deps.placement.model(),
  ): HaHostStatus[] {
    const out: HaHostStatus[] = [];
    for (const host of model.hosts) {
      if (!visible(host.id)) continue;
      const ha = haOfHost(model, host);
      const channel = this.#channelOf(host.connectionId);
      const verdict = this.#verdicts.get(host.id);
      const beat = this.#heartbeats.of(host.name);
      const storage = beat
        ? { counter: beat.counter, writtenAt: beat.writtenAt, readAt: this.#heartbeats.startedAt }
        : null;
      // vSphere hosts are vSphere HA's (haOfHost has HA off there): shown as vSphere shows them.
      const vsphere = isVsphereHost(host.object)
        ? vsphereHaOfHost(host.object, host.cluster)
        : undefined;
      const fencing = vsphere?.enabled
        ? 'vsphere-ha'
        : typeof host.object.computed['machine.id'] === 'string'
          ? 'bmc'
          : storage
            ? 'self-fence'
            : 'none';
      const reason = !ha.enabled
        ? 'high availability is not enabled here'
        : !channel
          ? this.#unwatchedReason(host)
          : fencing === 'none'
            ? 'agentId' in channel
              ? 'it has no BMC and writes no storage heartbeat Zenith can read: a failure cannot be fenced, so its VMs would not restart'
              : 'it has no BMC, and without a Zenith agent it writes no storage heartbeat and cannot fence itself: a failure cannot be fenced, so its VMs would not restart'
            : undefined;
      out.push({
        hostId: host.id,
        name: host.name,
        enabled: ha.enabled,
        state: vsphere?.enabled
          ? 'vsphere-ha'
          : !ha.enabled || !channel || !verdict
            ? 'unprotected'
            : verdict.state,
        since: verdict && verdict.state !== 'healthy' ? verdict.since : null,
        silentMs: channel ? this.#silentMs(channel) : null,
        fencing,
        storage,
        ...(reason ? { reason } : {}),
        ...(vsphere ? { reason: vsphere.reason, vsphereState: vsphere.state } : {}),
      });
    }
    return out;
  }

  /** Each VM's protection (VMs `visible` says the caller may read). */
  async vmStatus(visible: (id: string) => boolean): Promise<HaVmStatus[]> {
    const model = this.deps.placement.model();
    const open = new Map<string, Restart>();
    for (const restart of await this.store.openRestarts()) open.set(restart.vmId, restart);
    const hosts = new Map(this.hostStatus(() => true, model).map((h) => [h.hostId, h]));
    const out: HaVmStatus[] = [];
    for (const slot of model.vms.values()) {
      const vm = slot.object;
      if (!vm || vm.status !== 'present' || !visible(vm.id)) continue;
      const ha = haOfVm(model, vm.id);
      const host = slot.home >= 0 ? model.hosts[slot.home] : undefined;
      const restart = open.get(vm.id);
      const describedAt = this.store.describedAt(vm.id);
      const hostStatus = host ? hosts.get(host.id) : undefined;
      let state: HaVmStatus['state'] = 'protected';
      let reason: string | null = null;
      let priority: string = ha.priority;
      const gaveUp = this.vmMonitoring?.statusOf(vm.id);
      if (restart) {
        state = restart.state === 'waiting' ? 'waiting' : 'restarting';
        reason = restart.reason;
      } else if (hostStatus?.state === 'vsphere-ha') {
        state = 'vsphere-ha';
        reason = hostStatus.reason ?? null;
        priority = vsphereRestartPriority(vm, host?.cluster);
      } else if (gaveUp) {
        state = 'monitoring-limit';
        reason = gaveUp.reason;
      } else if (!ha.protected) {
        state = 'unprotected';
        reason = ha.reason;
      } else if (
        !hostStatus ||
        hostStatus.state === 'unprotected' ||
        hostStatus.fencing === 'none'
      ) {
        state = 'unprotected';
        reason = hostStatus?.reason ?? 'it runs on no host HA watches';
      } else if (describedAt === null) {
        state = 'unprotected';
        reason = 'its description (what a restart runs) is not taken yet';
      }
      out.push({
        vmId: vm.id,
        name: vm.name,
        hostId: host?.id ?? null,
        state,
        reason,
        priority,
        restartOrder: ha.restartOrder,
        describedAt,
      });
    }
    return out;
  }

  /** A failover with the restarts of the VMs `visible` says the caller may read. */
  async failoverView(failover: Failover, visible: (id: string) => boolean = () => true) {
    const restarts = (await this.store.restarts(failover.id)).filter((r) => visible(r.vmId));
    const nameOf = (id: string | null) =>
      id ? (this.deps.inventory.index.get(id)?.name ?? null) : null;
    return {
      ...failover,
      restarts: restarts.map((r) => ({
        vmId: r.vmId,
        vmName: r.vmName,
        priority: r.priority,
        restartOrder: r.restartOrder,
        state: r.state,
        toHostId: r.toHostId,
        toHostName: nameOf(r.toHostId),
        reason: r.reason,
        attempts: r.attempts,
        startedAt: r.startedAt,
        runningAt: r.runningAt,
      })),
    };
  }
}
