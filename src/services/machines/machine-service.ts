/**
 * Physical machines: the hosts BMC connections (Redfish, IPMI) discover, the
 * hypervisor hosts they are linked to, and what is done to them through their
 * BMCs. A machine is linked to the hypervisor host running on it by itself
 * (SMBIOS UUID, serial or NIC MAC, ./machine-links.ts) or by an operator;
 * the hypervisor host then carries the machine's hardware.* facts and its
 * power state (computed facts), so one host object shows both views, and
 * power actions on either act on the machine. A machine linked to nothing is
 * a host in mode `bare-metal`: placement never puts a VM there.
 *
 * Power, boot device, virtual media and the identify light are tasks (audited,
 * cancellable while queued, recovered after a restart); a power action ends
 * only once the BMC reads the state it should give, and every action but the
 * boot device ends once the machine's facts (power, identify light, virtual
 * media) have been read again. fence() powers off and
 * confirms it (high availability restarts VMs only after that).
 */
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import {
  requireFacet,
  type Capability,
  type Facts,
  type MachineBootDevice,
  type MachineFacet,
  type MachineFenceResult,
  type MachinePower,
  type MachinePowerAction,
  type MachineSensor,
} from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';
import { isMachine, matchMachine, sharesIdentity, type LinkHow } from './machine-links.js';

const overlaySource = 'machines';

/** What each power action leaves the machine in, read back from the BMC before the task ends. */
const expectedPower: Record<MachinePowerAction, MachinePower> = {
  on: 'on',
  shutdown: 'off',
  off: 'off',
  cycle: 'on',
  reset: 'on',
};

const MachineTaskParams = Type.Object({
  machineId: Type.String(),
  machineName: Type.String(),
  /** The host the request named (the machine, or the hypervisor host linked to it). */
  hostId: Type.String(),
  operation: Type.Union([
    Type.Literal('power'),
    Type.Literal('boot'),
    Type.Literal('mediaInsert'),
    Type.Literal('mediaEject'),
    Type.Literal('identify'),
    Type.Literal('fence'),
  ]),
  action: Type.Optional(Type.String()),
  device: Type.Optional(Type.String()),
  image: Type.Optional(Type.String()),
  on: Type.Optional(Type.Boolean()),
});
type MachineTaskParams = Static<typeof MachineTaskParams>;

export interface MachineLinkView {
  machineId: string;
  hostId: string | null;
  how: LinkHow;
  linkedBy: string;
  at: number;
}

export interface MachineView {
  machine: ManagedObject;
  /** The hypervisor host running on it; null while it is bare metal. */
  hostId: string | null;
  link: MachineLinkView | null;
  capabilities: Capability[];
}

export interface MachineSettings {
  /** How long a power action may take to read back as done. */
  powerConfirmMs: number;
  /** How long a graceful shutdown may take. */
  shutdownConfirmMs: number;
  /** Between reads of the power state while confirming. */
  pollMs: number;
}

export const defaultMachineSettings: MachineSettings = {
  powerConfirmMs: 120_000,
  shutdownConfirmMs: 600_000,
  pollMs: 1000,
};

export class MachineService {
  /** Links by machine id (host null: declared bare metal by an operator). */
  readonly #links = new Map<string, MachineLinkView>();
  readonly #kind: TaskKind<MachineTaskParams>;
  #unsubscribe: (() => void) | undefined;
  #relinking: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: {
      store: Store;
      inventory: InventoryService;
      connections: ConnectionService;
      tasks: TaskService;
      events: EventBus;
      clock: Clock;
      logger: Logger;
      settings?: Partial<MachineSettings>;
    },
  ) {
    this.#kind = deps.tasks.register({
      name: 'host.machine',
      params: MachineTaskParams,
      run: (context) => this.#run(context),
      // On and off, boot devices, media and the light can be asked again; a cycle or reset cannot.
      recover: (task) =>
        Promise.resolve(
          task.params.operation === 'power' &&
            (task.params.action === 'cycle' || task.params.action === 'reset')
            ? 'interrupted'
            : 'retry',
        ),
    });
  }

  get #settings(): MachineSettings {
    return { ...defaultMachineSettings, ...this.deps.settings };
  }

  /** Reads the links, lays their facts over the hosts and links what matches; follows changes. */
  async start(): Promise<void> {
    const rows = await this.deps.store.db.selectFrom('machine_links').selectAll().execute();
    for (const row of rows)
      this.#links.set(row.machine_id, {
        machineId: row.machine_id,
        hostId: row.host_id,
        how: row.how as LinkHow,
        linkedBy: row.linked_by,
        at: Number(row.at),
      });
    this.#unsubscribe = this.deps.events.subscribe((event) => {
      if (
        (event.type === 'inventory.created' ||
          event.type === 'inventory.updated' ||
          event.type === 'inventory.missing' ||
          event.type === 'inventory.deleted') &&
        event.data.kind === 'host' &&
        event.objectId
      )
        this.#schedule(event.objectId);
    });
    await this.#relinkAll();
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  /** Waits for link work under way (tests, shutdown). */
  settled(): Promise<void> {
    return this.#relinking;
  }

  #schedule(hostId: string): void {
    this.#relinking = this.#relinking
      .then(() => this.#relinkOne(hostId))
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error, hostId }, 'linking a machine to its host failed'),
      );
  }

  async #relinkAll(): Promise<void> {
    for (const host of this.deps.inventory.index.ofKind('host')) await this.#relinkOne(host.id);
  }

  async #relinkOne(hostId: string): Promise<void> {
    const object = this.deps.inventory.index.get(hostId);
    if (!object) return;
    if (isMachine(object)) {
      if (!this.#links.has(object.id) && object.status === 'present') {
        const match = matchMachine(object, this.#unlinkedHosts());
        if (match)
          await this.#store(
            { machineId: object.id, hostId: match.host.id, how: match.how },
            { id: 'system', kind: 'system', name: 'zenith' },
          );
      }
      this.#refreshOverlays(object.id);
      return;
    }
    // A hypervisor host: linked already (refresh), or a machine waiting for it.
    const linked = this.#machineOfHost(object.id);
    if (linked) return this.#refreshOverlays(linked);
    if (object.status !== 'present') return;
    // Every host report comes here: only a machine sharing a key with this host is matched in full.
    for (const machine of this.deps.inventory.index.ofKind('host')) {
      if (!isMachine(machine) || this.#links.has(machine.id) || machine.status !== 'present')
        continue;
      if (!sharesIdentity(machine, object)) continue;
      const match = matchMachine(machine, this.#unlinkedHosts());
      if (match?.host.id === object.id) {
        await this.#store(
          { machineId: machine.id, hostId: object.id, how: match.how },
          { id: 'system', kind: 'system', name: 'zenith' },
        );
        this.#refreshOverlays(machine.id);
        return;
      }
    }
  }

  #unlinkedHosts(): ManagedObject[] {
    const linked = new Set([...this.#links.values()].map((link) => link.hostId));
    return this.deps.inventory.index
      .ofKind('host')
      .filter((host) => !isMachine(host) && !linked.has(host.id));
  }

  #machineOfHost(hostId: string): string | undefined {
    for (const link of this.#links.values()) if (link.hostId === hostId) return link.machineId;
    return undefined;
  }

  /** The facts a link lays over both hosts (or a lone machine's bare-metal mode). */
  #refreshOverlays(machineId: string): void {
    const machine = this.deps.inventory.index.get(machineId);
    const link = this.#links.get(machineId);
    if (!machine) return;
    const hostId = link?.hostId ?? null;
    this.deps.inventory.setOverlay(overlaySource, machineId, {
      'machine.linkedHostId': hostId,
      ...(hostId ? {} : { 'host.mode': 'bare-metal' }),
    });
    if (!hostId) return;
    const hardware: Facts = { 'machine.id': machine.id, 'machine.name': machine.name };
    for (const [key, value] of Object.entries(machine.facts))
      if (key.startsWith('hardware.') || key.startsWith('bmc.')) hardware[`machine.${key}`] = value;
    this.deps.inventory.setOverlay(overlaySource, hostId, hardware);
  }

  async #store(
    link: { machineId: string; hostId: string | null; how: LinkHow },
    actor: Actor,
  ): Promise<MachineLinkView> {
    const view: MachineLinkView = { ...link, linkedBy: actor.id, at: this.deps.clock.now() };
    await this.deps.store.transaction(async (tx) => {
      await tx.deleteFrom('machine_links').where('machine_id', '=', link.machineId).execute();
      await tx
        .insertInto('machine_links')
        .values({
          machine_id: view.machineId,
          host_id: view.hostId,
          how: view.how,
          linked_by: view.linkedBy,
          at: view.at,
        })
        .execute();
    });
    this.#links.set(link.machineId, view);
    this.deps.logger.info(
      { machineId: link.machineId, hostId: link.hostId, how: link.how },
      link.hostId ? 'machine linked to its host' : 'machine declared bare metal',
    );
    return view;
  }

  /** The machine (BMC view) behind a host: the host itself when it is one, else the linked one. */
  machineOf(hostIdOrName: string): ManagedObject {
    const host = this.deps.inventory.resolve('host', hostIdOrName);
    if (isMachine(host)) return host;
    const machineId = this.#machineOfHost(host.id);
    if (!machineId)
      throw new ZenithError(
        'ZEN_NO_BMC',
        `host ${host.name} has no BMC: add its BMC as a redfish or ipmi connection (it is linked by SMBIOS UUID, serial or MAC, or by hand)`,
        { hostId: host.id },
      );
    return this.deps.inventory.get(machineId);
  }

  view(hostIdOrName: string): MachineView {
    const machine = this.machineOf(hostIdOrName);
    const link = this.#links.get(machine.id) ?? null;
    return {
      machine,
      hostId: link?.hostId ?? null,
      link,
      capabilities: this.#driverOf(machine).info.capabilities.filter((c) =>
        c.startsWith('machine.'),
      ),
    };
  }

  /** Links a machine to the hypervisor host on it (an operator's word wins over a match). */
  async link(machineIdOrName: string, hostIdOrName: string, actor: Actor): Promise<MachineView> {
    const machine = this.deps.inventory.resolve('host', machineIdOrName);
    const host = this.deps.inventory.resolve('host', hostIdOrName);
    if (!isMachine(machine))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `${machine.name} is not a physical machine (a host a redfish or ipmi connection discovered)`,
        { machineId: machine.id },
      );
    if (isMachine(host))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `${host.name} is a physical machine itself: link a machine to a hypervisor host`,
        { hostId: host.id },
      );
    const current = this.#links.get(machine.id);
    if (current?.hostId === host.id) return this.view(machine.id);
    if (current?.hostId)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${machine.name} is linked to another host already: unlink it first`,
        { machineId: machine.id, hostId: current.hostId },
      );
    const other = this.#machineOfHost(host.id);
    if (other)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${host.name} is linked to another machine already: unlink that one first`,
        { hostId: host.id, machineId: other },
      );
    await this.#store({ machineId: machine.id, hostId: host.id, how: 'manual' }, actor);
    this.#refreshOverlays(machine.id);
    return this.view(machine.id);
  }

  /** Unlinks a machine from its host; it stays bare metal (never linked by itself again). */
  async unlink(hostIdOrName: string, actor: Actor): Promise<MachineView> {
    const machine = this.machineOf(hostIdOrName);
    const previous = this.#links.get(machine.id)?.hostId ?? null;
    await this.#store({ machineId: machine.id, hostId: null, how: 'manual' }, actor);
    if (previous) this.deps.inventory.setOverlay(overlaySource, previous, null);
    this.#refreshOverlays(machine.id);
    return this.view(machine.id);
  }

  /** The machine's sensors as its BMC reads them now. */
  async sensors(hostIdOrName: string): Promise<{ machineId: string; sensors: MachineSensor[] }> {
    const machine = this.machineOf(hostIdOrName);
    return {
      machineId: machine.id,
      sensors: await this.#facet(machine).sensors(machine.externalId!),
    };
  }

  /** Queues a power action (a task ending once the BMC reads the power it should give). */
  requestPower(
    hostIdOrName: string,
    action: MachinePowerAction,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    return this.#submit(
      hostIdOrName,
      'machine.power',
      { operation: 'power', action },
      owner,
      requestId,
    );
  }

  requestBoot(
    hostIdOrName: string,
    device: MachineBootDevice,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    return this.#submit(
      hostIdOrName,
      'machine.boot',
      { operation: 'boot', device },
      owner,
      requestId,
    );
  }

  requestMedia(
    hostIdOrName: string,
    image: string | null,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    return this.#submit(
      hostIdOrName,
      'machine.media',
      image === null ? { operation: 'mediaEject' } : { operation: 'mediaInsert', image },
      owner,
      requestId,
    );
  }

  requestIdentify(
    hostIdOrName: string,
    on: boolean,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    return this.#submit(
      hostIdOrName,
      'machine.identify',
      { operation: 'identify', on },
      owner,
      requestId,
    );
  }

  requestFence(hostIdOrName: string, owner: Actor, requestId?: string): Promise<Task> {
    return this.#submit(hostIdOrName, 'machine.fence', { operation: 'fence' }, owner, requestId);
  }

  /**
   * Powers a host's machine on or off as a task of its own (audited under `owner`) and resolves
   * once it has succeeded; with `waitForHypervisor`, also once the hypervisor host on the machine
   * answers again (its connection connected: an agent reconnected, a hypervisor reachable).
   * Power management uses it.
   */
  async powerAndWait(
    hostIdOrName: string,
    action: MachinePowerAction,
    owner: Actor,
    options: { signal?: AbortSignal; waitForHypervisor?: boolean; timeoutMs?: number } = {},
  ): Promise<void> {
    // On the machine itself: a task already running on the hypervisor host (a creation waiting
    // for it) would otherwise hold this one back (tasks on one target run in order).
    const task = await this.requestPower(this.machineOf(hostIdOrName).id, action, owner);
    const done = await this.deps.tasks.waitFor(task.id, options.signal);
    if (done.state !== 'succeeded')
      throw new ZenithError(
        done.error?.code === 'BMC_POWER_UNCONFIRMED' ? 'BMC_POWER_UNCONFIRMED' : 'BMC_POWER_FAILED',
        `powering ${action} failed: ${done.error?.message ?? done.state}`,
        { taskId: done.id, error: done.error },
      );
    if (!options.waitForHypervisor) return;
    const host = this.deps.inventory.resolve('host', hostIdOrName);
    const hypervisorId = isMachine(host) ? this.#links.get(host.id)?.hostId : host.id;
    if (!hypervisorId) return;
    const deadline = this.deps.clock.now() + (options.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const hypervisor = this.deps.inventory.index.get(hypervisorId);
      if (hypervisor?.connectionId && hypervisor.status === 'present')
        try {
          this.deps.connections.driver(hypervisor.connectionId);
          return;
        } catch {
          // not connected yet
        }
      if (this.deps.clock.now() > deadline)
        throw new ZenithError(
          'ZEN_TIMEOUT',
          `the machine is on, but host ${hypervisor?.name ?? hypervisorId} did not connect again in time`,
          { hostId: hypervisorId },
        );
      await this.deps.clock.sleep(this.#settings.pollMs, options.signal);
    }
  }

  /**
   * Fences a host now (high availability): powers its machine off and resolves only once the BMC
   * reads it off; BMC_FENCE_UNCONFIRMED otherwise, ZEN_NO_BMC when the host has no BMC.
   */
  async fence(hostIdOrName: string, deadlineMs?: number): Promise<MachineFenceResult> {
    const machine = this.machineOf(hostIdOrName);
    const driver = this.#driverOf(machine);
    const settings = (await this.deps.connections.get(machine.connectionId!)).settings;
    const configured =
      typeof settings.fenceDeadlineSeconds === 'number'
        ? settings.fenceDeadlineSeconds * 1000
        : 60_000;
    return requireFacet(driver, 'machine', 'fence a machine').fence(machine.externalId!, {
      deadlineMs: deadlineMs ?? configured,
    });
  }

  async #submit(
    hostIdOrName: string,
    capability: Capability,
    operation: Omit<MachineTaskParams, 'machineId' | 'machineName' | 'hostId'>,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    const host = this.deps.inventory.resolve('host', hostIdOrName);
    const machine = this.machineOf(host.id);
    if (machine.status !== 'present')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `machine ${machine.name} is missing from its BMC`,
        {
          machineId: machine.id,
        },
      );
    const driver = this.#driverOf(machine);
    if (!driver.info.capabilities.includes(capability))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} BMCs cannot do this (${capability})`,
        { capability, type: driver.info.type },
      );
    return this.deps.tasks.submit({
      kind: this.#kind,
      targetId: host.id,
      params: { ...operation, machineId: machine.id, machineName: machine.name, hostId: host.id },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  #driverOf(machine: ManagedObject) {
    return this.deps.connections.driver(machine.connectionId!);
  }

  #facet(machine: ManagedObject): MachineFacet {
    return requireFacet(this.#driverOf(machine), 'machine', 'act on a physical machine');
  }

  async #run(context: TaskRunContext<MachineTaskParams>): Promise<unknown> {
    const machine = this.deps.inventory.get(context.task.params.machineId);
    const facet = this.#facet(machine);
    const result = await this.#act(context, machine, facet);
    if (context.task.params.operation !== 'boot') {
      // What the action changed (the light, the CD, the power) shows on the machine by the time
      // the task ends, not at the next poll. The action is done either way: a failed read waits
      // for the next poll.
      context.progress({ percent: 90, message: 'reading the machine again' });
      await facet
        .refreshStatus()
        .catch((error: unknown) =>
          this.deps.logger.info(
            { err: error, machineId: machine.id },
            'reading the machine after an action failed; the next poll will',
          ),
        );
    }
    return result;
  }

  async #act(
    context: TaskRunContext<MachineTaskParams>,
    machine: ManagedObject,
    facet: MachineFacet,
  ): Promise<unknown> {
    const params = context.task.params;
    const id = machine.externalId!;
    switch (params.operation) {
      case 'power': {
        const action = params.action as MachinePowerAction;
        const before = await facet.powerState(id);
        context.progress({ percent: 10, message: `asking the BMC to ${action}` });
        // Power on a machine that is on, or off one that is off: nothing to ask.
        if (!((action === 'on' && before === 'on') || (action === 'off' && before === 'off')))
          await facet.power(id, action);
        context.progress({
          percent: 50,
          message: `waiting for the BMC to read ${expectedPower[action]}`,
        });
        const waitMs =
          action === 'shutdown' ? this.#settings.shutdownConfirmMs : this.#settings.powerConfirmMs;
        const power = await this.#confirm(facet, id, expectedPower[action], waitMs, context.signal);
        return { machineId: machine.id, action, before, power };
      }
      case 'boot':
        await facet.bootOnce(id, params.device as MachineBootDevice);
        return { machineId: machine.id, bootOnce: params.device };
      case 'mediaInsert':
        if (!facet.insertMedia) throw unsupported('virtual media');
        await facet.insertMedia(id, params.image!);
        return { machineId: machine.id, media: params.image };
      case 'mediaEject':
        if (!facet.ejectMedia) throw unsupported('virtual media');
        await facet.ejectMedia(id);
        return { machineId: machine.id, media: null };
      case 'identify':
        await facet.identify(id, params.on === true);
        return { machineId: machine.id, identify: params.on === true };
      case 'fence': {
        const result = await this.fence(machine.id);
        return { machineId: machine.id, power: 'off', ...result };
      }
    }
  }

  /** Reads the power state until it is `wanted`; BMC_POWER_UNCONFIRMED at the deadline. */
  async #confirm(
    facet: MachineFacet,
    id: string,
    wanted: MachinePower,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<MachinePower> {
    const start = this.deps.clock.now();
    let last: MachinePower | 'unread' = 'unread';
    for (;;) {
      try {
        last = await facet.powerState(id);
      } catch (error) {
        this.deps.logger.info(
          { err: error, machine: id },
          'reading the power state failed; reading again',
        );
      }
      if (last === wanted) return last;
      if (this.deps.clock.now() - start + this.#settings.pollMs > waitMs) break;
      await this.deps.clock.sleep(this.#settings.pollMs, signal);
    }
    throw new ZenithError(
      'BMC_POWER_UNCONFIRMED',
      `the BMC did not read the power ${wanted} within ${Math.round(waitMs / 1000)} s (last read: ${last})`,
      { wanted, lastState: last, waitMs },
    );
  }
}

function unsupported(what: string): ZenithError {
  return new ZenithError('ZEN_UNSUPPORTED', `this BMC has no ${what}`, {});
}
