/**
 * High availability for agent hosts: watches each host where a policy enables HA (its channel,
 * pinged every second, and its storage heartbeat), declares it failed when both stop for the
 * detection time, and runs a durable failover (./failover.ts) that fences it and restarts its
 * protected VMs elsewhere. Keeps each protected VM's portable description current while its host
 * is up — a restart runs it when the host is gone. Acts as an identity of its own, `zenith-ha`.
 *
 * A host whose channel is silent but whose storage heartbeat advances is isolated, not failed:
 * nothing restarts (its agent applies the isolation response). After the control plane starts,
 * no host is declared failed before the grace period (the hosts report first).
 */
import { existsSync } from 'node:fs';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { facetOf } from '../../hypervisors/driver.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import type { HaAgentSettings } from '../../protocols/agent-channel/ha-values.js';
import { readHeartbeatDir, type HaHeartbeat } from '../../protocols/ha-heartbeat.js';
import type { Store } from '../../store/store.js';
import type { AgentHub } from '../agents/agent-hub.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { IdentityService } from '../identity/identity-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { MachineService } from '../machines/machine-service.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { PlacementModel } from '../placement/placement-model.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { TaskService } from '../tasks/task-service.js';
import { FailoverRunner } from './failover.js';
import { haOfHost, haOfVm } from './ha-settings.js';
import { HaStore, type Failover, type Restart } from './ha-store.js';
import { healthySilenceMs, HostWatch, type HostVerdict } from './host-watch.js';
import { MovedAwayDiscards } from './moved-away.js';

export type HaHostState = 'healthy' | 'suspect' | 'isolated' | 'failed' | 'unprotected';

export interface HaHostStatus {
  hostId: string;
  name: string;
  enabled: boolean;
  state: HaHostState;
  since: number | null;
  silentMs: number | null;
  fencing: 'bmc' | 'self-fence' | 'none';
  storage: { counter: number; writtenAt: number; readAt: number } | null;
  reason?: string;
}

export interface HaVmStatus {
  vmId: string;
  name: string;
  hostId: string | null;
  state: 'protected' | 'unprotected' | 'restarting' | 'waiting';
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

export class HaService {
  readonly store: HaStore;
  readonly failovers: FailoverRunner;
  readonly #watches = new Map<string, HostWatch>();
  readonly #verdicts = new Map<string, HostVerdict>();
  /** connection id → agent id (agent connections only). */
  #agentIds = new Map<string, string>();
  #agentIdsAt = 0;
  #actor: Actor = { id: 'system', kind: 'system', name: haIdentityName };
  #startedAt = 0;
  #lastDescribe = 0;
  #lastRetry = 0;
  /** The storage heartbeats last read, by host name (the highest counter over its roots). */
  #beats = new Map<string, HaHeartbeat>();
  #beatsAt = 0;
  /** What each agent link was last told to watch (a new link after a reconnect is told again). */
  readonly #configured = new WeakMap<AgentLink, string>();
  /** Hosts back after a failover discard the VMs that moved away (moved-away.ts). */
  readonly #movedAway: MovedAwayDiscards;
  #abort: AbortController | undefined;
  #loop: Promise<void> = Promise.resolve();
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
          await this.#readHeartbeats(this.deps.placement.model(), true);
          watch.observe(
            this.deps.clock.now(),
            {
              channelSilentMs: null,
              storageCounter: this.#beats.get(host.name)?.counter ?? null,
              storageReadAt: this.#beatsReadAt,
            },
            0,
          );
          return watch.lastStorageAdvance !== before;
        },
        released: (hostId) => {
          const host = this.deps.inventory.index.get(hostId);
          return host ? (this.#beats.get(host.name)?.released ?? []) : [];
        },
      },
    });
  }

  /** Loads what was kept, takes its identity, and starts watching (the grace period starts now). */
  async start(): Promise<void> {
    await this.store.load();
    this.#actor = await this.#identity();
    this.#startedAt = this.deps.clock.now();
    this.deps.agentHub.probeEvery(1000);
    this.#abort = new AbortController();
    const signal = this.#abort.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        await this.#tick().catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'high availability check failed'),
        );
        await this.deps.clock.sleep(this.#options.tickMs, signal).catch(() => undefined);
      }
    })();
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
    this.#abort?.abort();
    await this.#loop;
  }

  async #identity(): Promise<Actor> {
    const { identities } = this.deps;
    const identity = await identities.get(haIdentityName).catch(() =>
      identities.createServiceIdentity({
        name: haIdentityName,
        role: 'none',
        displayName: 'high availability (restarts the VMs of failed hosts)',
      }),
    );
    return { id: identity.id, kind: identity.kind, name: identity.name };
  }

  async #tick(): Promise<void> {
    const { clock, placement } = this.deps;
    const now = clock.now();
    if (now - this.#lastRetry >= 3_000) {
      this.#lastRetry = now;
      await this.#resumeFailovers();
    }
    // Nothing to watch until a policy enables HA somewhere (the model is not built for nothing).
    if (!this.#anyEnabled()) return;
    const model = placement.model();
    await this.#refreshAgentIds(now);
    await this.#readHeartbeats(model, false);
    await this.#configureAgents(model);
    await this.#movedAway.run(now, this.#agentIds);
    for (const host of model.hosts) {
      const object = host.object;
      const ha = haOfHost(model, host);
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      if (!ha.enabled || !agentId) {
        this.#verdicts.delete(host.id);
        continue;
      }
      let watch = this.#watches.get(host.id);
      if (!watch) this.#watches.set(host.id, (watch = new HostWatch(this.#startedAt)));
      const silent = this.deps.agentHub.silentMs(agentId);
      const counter = this.#beats.get(object.name)?.counter ?? null;
      const verdict = watch.observe(
        now,
        { channelSilentMs: silent, storageCounter: counter, storageReadAt: this.#beatsReadAt },
        ha.detectionMs,
      );
      await this.#transition(model, object, this.#verdicts.get(host.id), verdict, now);
      this.#verdicts.set(host.id, verdict);
    }
    if (now - this.#lastDescribe >= this.#options.describeEveryMs) {
      this.#lastDescribe = now;
      await this.#describeProtected(model);
    }
  }

  #anyEnabled(): boolean {
    const index = this.deps.policies.index;
    const enables = (policy: { settings: { ha?: { enabled?: boolean } } }) =>
      policy.settings.ha?.enabled === true;
    if (index.global.some(enables)) return true;
    for (const policies of index.byScopeId.values()) if (policies.some(enables)) return true;
    return false;
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
      // Declared once per failure (a host that comes back and fails again gets a new failover):
      // checked before the store, which a dead host would otherwise be asked about twice a second.
      if (this.#declared.has(host.id)) return;
      const open = (await this.store.unfinished()).find((f) => f.hostId === host.id);
      if (open) return;
      this.#declared.add(host.id);
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
    }
  }

  /**
   * A host cut off but alive: nothing of it restarts, except the VMs its agent powered off itself
   * (isolation response) and lists as released in its storage heartbeat — they are safe to run
   * elsewhere, and do, in a failover of their own.
   */
  async #failOverReleased(host: ManagedObject, since: number, now: number): Promise<void> {
    const released = new Set(this.#beats.get(host.name)?.released ?? []);
    if (released.size === 0) return;
    const stillHere = this.deps.inventory.index
      .children(host.id)
      .some(
        (vm) =>
          vm.kind === 'vm' && vm.status === 'present' && released.has(String(vm.facts['vm.uuid'])),
      );
    if (!stillHere) return;
    if ((await this.store.unfinished()).some((f) => f.hostId === host.id)) return;
    const failover = await this.store.createFailover({
      hostId: host.id,
      hostName: host.name,
      failedAt: since,
      fenced: { method: 'released', at: now },
    });
    this.deps.logger.warn(
      { host: host.name, failover: failover.id, released: [...released] },
      'isolated host released VMs: restarting them elsewhere',
    );
    await this.failovers.submit(failover);
  }

  /** When each unfinished failover was last submitted again. */
  readonly #resumedAt = new Map<string, number>();

  /** Hosts a failover was started for since they last answered. */
  readonly #declared = new Set<string>();

  /** Failovers left fencing or waiting (their task over): tried again, as capacity may be back. */
  async #resumeFailovers(): Promise<void> {
    const now = this.deps.clock.now();
    for (const failover of await this.store.unfinished()) {
      // One that cannot be fenced is tried again every 15 s (each try says why, as an event).
      const every = failover.state === 'fencing' ? 15_000 : 3_000;
      if (now - (this.#resumedAt.get(failover.id) ?? 0) < every) continue;
      this.#resumedAt.set(failover.id, now);
      if (failover.taskId) {
        const task = await this.deps.tasks.get(failover.taskId).catch(() => undefined);
        if (task && (task.state === 'queued' || task.state === 'running')) continue;
      }
      await this.failovers.submit(failover);
    }
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
      } catch (error) {
        this.deps.logger.warn({ err: error, vm: vm.name }, 'describing a protected VM failed');
      }
    }
  }

  /**
   * Every HA host's storage heartbeat, read once per second: each storage root the HA hosts use is
   * read through a live agent that has it (readHaHeartbeats), or where the control plane itself
   * sees it. One read per root serves every host writing there.
   */
  async #readHeartbeats(model: PlacementModel, force: boolean): Promise<void> {
    const now = this.deps.clock.now();
    if (!force && now - this.#beatsAt < 1000) return;
    this.#beatsAt = now;
    const roots = new Map<string, string[]>(); // root → agents that have it and answer
    for (const host of model.hosts) {
      if (!haOfHost(model, host).enabled) continue;
      const hostRoots = host.object.facts['storage.roots'];
      if (!Array.isArray(hostRoots)) continue;
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      const silent = agentId ? this.deps.agentHub.silentMs(agentId) : null;
      for (const root of hostRoots) {
        if (typeof root !== 'string') continue;
        const readers = roots.get(root) ?? [];
        if (agentId && silent !== null && silent < healthySilenceMs) readers.push(agentId);
        roots.set(root, readers);
      }
    }
    const beats = new Map<string, HaHeartbeat>();
    await Promise.all(
      [...roots].map(async ([root, readers]) => {
        for (const found of await this.#readRoot(root, readers))
          if ((beats.get(found.host)?.counter ?? -1) < found.counter) beats.set(found.host, found);
      }),
    );
    this.#beats = beats;
    this.#beatsReadAt = this.deps.clock.now();
  }

  /** When the heartbeats were last read through (null: never). */
  #beatsReadAt: number | null = null;

  async #readRoot(root: string, readers: string[]): Promise<HaHeartbeat[]> {
    // The two peers heard most recently are asked at once, the first answer taken: one that is
    // being cut off right now must not hold the reading (and so the verdicts) back.
    const peers = readers
      .filter((agentId) => this.deps.agentHub.link(agentId)?.supports('readHaHeartbeats'))
      .sort(
        (a, b) =>
          (this.deps.agentHub.silentMs(a) ?? Infinity) -
          (this.deps.agentHub.silentMs(b) ?? Infinity),
      )
      .slice(0, 2);
    if (peers.length > 0) {
      try {
        return await Promise.any(
          peers.map((agentId) =>
            this.deps.agentHub.link(agentId)!.call('readHaHeartbeats', [root], { timeoutMs: 1000 }),
          ),
        );
      } catch (error) {
        this.deps.logger.debug({ err: error, root }, 'no peer could read the heartbeats');
      }
    }
    if (!existsSync(root)) return [];
    try {
      const { heartbeats, invalid } = await readHeartbeatDir(root);
      for (const bad of invalid)
        this.deps.logger.warn({ root, ...bad }, 'a storage heartbeat file is not valid');
      return heartbeats;
    } catch (error) {
      this.deps.logger.warn({ err: error, root }, 'reading storage heartbeats failed');
      return [];
    }
  }

  /** Tells each agent of an HA host what to watch (isolation response, self-fencing), once per link. */
  async #configureAgents(model: PlacementModel): Promise<void> {
    for (const host of model.hosts) {
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      const link = agentId ? this.deps.agentHub.link(agentId) : undefined;
      if (!link?.connected || !link.supports('configureHa')) continue;
      const ha = haOfHost(model, host);
      const settings: HaAgentSettings = {
        enabled: ha.enabled,
        isolationResponse: ha.isolationResponse,
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
    for (const connection of await this.deps.connections.list())
      if (connection.type === 'agent' && typeof connection.settings.agentId === 'string')
        ids.set(connection.id, connection.settings.agentId);
    this.#agentIds = ids;
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
      const agentId = host.connectionId ? this.#agentIds.get(host.connectionId) : undefined;
      const verdict = this.#verdicts.get(host.id);
      const beat = this.#beats.get(host.name);
      const storage = beat
        ? { counter: beat.counter, writtenAt: beat.writtenAt, readAt: this.#beatsAt }
        : null;
      const fencing =
        typeof host.object.computed['machine.id'] === 'string'
          ? 'bmc'
          : storage
            ? 'self-fence'
            : 'none';
      const reason = !ha.enabled
        ? 'high availability is not enabled here'
        : !agentId
          ? 'only agent hosts are watched so far'
          : fencing === 'none'
            ? 'it has no BMC and writes no storage heartbeat Zenith can read: a failure cannot be fenced, so its VMs would not restart'
            : undefined;
      out.push({
        hostId: host.id,
        name: host.name,
        enabled: ha.enabled,
        state: !ha.enabled || !agentId || !verdict ? 'unprotected' : verdict.state,
        since: verdict && verdict.state !== 'healthy' ? verdict.since : null,
        silentMs: agentId ? this.deps.agentHub.silentMs(agentId) : null,
        fencing,
        storage,
        ...(reason ? { reason } : {}),
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
      if (restart) {
        state = restart.state === 'waiting' ? 'waiting' : 'restarting';
        reason = restart.reason;
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
        priority: ha.priority,
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
