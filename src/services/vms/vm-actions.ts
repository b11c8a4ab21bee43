/**
 * VM actions (start, stop, migrate, …) as tasks. A request is checked before
 * anything is queued (the VM exists, its connection is up and can do it, the
 * VM is in a state that allows it, high availability's admission control
 * lets a start or a move through) so that an impossible action is a 4xx at
 * once, not a failed task later.
 */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type {
  ActionProgress,
  ActionContext,
  Capability,
  DiscoveredVm,
  HypervisorDriver,
  PowerState,
} from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { FactValue, ManagedObject } from '../inventory/model.js';
import { migrateAcrossHosts, migrationEnds } from './cross-host-migration.js';
import { beforeMigrationRetry } from './migration-retry.js';
import type { Tx } from '../../store/store.js';
import type { Task, TaskKind, TaskRunContext, TaskService } from '../tasks/task-service.js';

export const vmActionNames = [
  'start',
  'stop',
  'shutdown',
  'reboot',
  'reset',
  'suspend',
  'resume',
  'delete',
  'migrate',
] as const;
export type VmActionName = (typeof vmActionNames)[number];

/** What a request for an action may say: a migration's target and limits; nothing for the others. */
export interface VmActionRequest {
  /** By id or name. */
  targetHostId?: string;
  /** By id or name. */
  targetDatastoreId?: string;
  withStorage?: boolean;
  maxBandwidthBytesPerSecond?: number;
  maxDowntimeMs?: number;
  multifdChannels?: number;
  autoConverge?: boolean;
}

/** The stored parameters of an action: the request with its targets resolved, and names to show. */
const ActionParams = Type.Object({
  vmName: Type.Optional(Type.String()),
  targetHostId: Type.Optional(Type.String()),
  targetHostName: Type.Optional(Type.String()),
  sourceHostId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** The VM's id at the source when a migration began: the migration's id at both ends. */
  sourceExternalId: Type.Optional(Type.String()),
  targetDatastoreId: Type.Optional(Type.String()),
  targetDatastoreExternalId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  targetDatastoreName: Type.Optional(Type.String()),
  withStorage: Type.Optional(Type.Boolean()),
  maxBandwidthBytesPerSecond: Type.Optional(Type.Number()),
  maxDowntimeMs: Type.Optional(Type.Number()),
  multifdChannels: Type.Optional(Type.Number()),
  autoConverge: Type.Optional(Type.Boolean()),
});
type ActionParams = Static<typeof ActionParams>;

interface ActionSpec {
  capability: Capability;
  /** Power states the action starts from. */
  from: PowerState[];
  /** The power state that shows the action took effect (for recovery), if any. */
  reaches: PowerState | 'gone' | 'moved' | null;
  perform(
    driver: HypervisorDriver,
    vm: ManagedObject,
    context: ActionContext,
    params: ActionParams,
    targetExternalId: string | null,
  ): Promise<DiscoveredVm | null>;
}

const active: PowerState[] = ['running', 'suspended', 'paused'];

const specs: Record<VmActionName, ActionSpec> = {
  start: {
    capability: 'vm.start',
    from: ['stopped'],
    reaches: 'running',
    perform: (d, vm, c) => d.startVm(vm.externalId!, c),
  },
  stop: {
    capability: 'vm.stop',
    from: active,
    reaches: 'stopped',
    perform: (d, vm, c) => d.stopVm(vm.externalId!, c, { force: true }),
  },
  shutdown: {
    capability: 'vm.shutdown',
    from: ['running'],
    reaches: 'stopped',
    perform: (d, vm, c) => d.stopVm(vm.externalId!, c, { force: false }),
  },
  reboot: {
    capability: 'vm.reboot',
    from: ['running'],
    reaches: null,
    perform: (d, vm, c) => d.rebootVm(vm.externalId!, c),
  },
  reset: {
    capability: 'vm.reset',
    from: ['running', 'suspended', 'paused'],
    reaches: 'running',
    perform: (d, vm, c) =>
      d.resetVm ? d.resetVm(vm.externalId!, c) : d.rebootVm(vm.externalId!, c),
  },
  suspend: {
    capability: 'vm.suspend',
    from: ['running'],
    reaches: 'suspended',
    perform: (d, vm, c) => d.suspendVm(vm.externalId!, c),
  },
  resume: {
    capability: 'vm.resume',
    from: ['suspended', 'paused'],
    reaches: 'running',
    perform: (d, vm, c) => d.resumeVm(vm.externalId!, c),
  },
  delete: {
    capability: 'vm.delete',
    from: ['stopped', 'unknown'],
    reaches: 'gone',
    perform: (d, vm, c) => d.deleteVm(vm.externalId!, c),
  },
  migrate: {
    capability: 'vm.migrate',
    from: ['running', 'stopped', 'suspended', 'paused'],
    reaches: 'moved',
    perform: (d, vm, c, params, target) =>
      d.migrateVm(vm.externalId!, target!, c, {
        withStorage: params.withStorage === true,
        ...(typeof params.targetDatastoreExternalId === 'string'
          ? { datastoreExternalId: params.targetDatastoreExternalId }
          : {}),
        ...(typeof params.maxBandwidthBytesPerSecond === 'number'
          ? { maxBandwidthBytesPerSecond: params.maxBandwidthBytesPerSecond }
          : {}),
        ...(typeof params.maxDowntimeMs === 'number'
          ? { maxDowntimeMs: params.maxDowntimeMs }
          : {}),
      }),
  },
};

/** High availability's admission control for starts and moves: each throws its refusal. */
export interface ActionAdmission {
  admitStart(vmId: string, action: 'start' | 'resume'): void;
  admitMigration(vmId: string, targetHostId: string): void;
  /**
   * High availability has declared the host failed: a migration to it whose switch-over was done
   * leaves the VM to it (its failover runs the VM again elsewhere) instead of waiting for the host.
   */
  hostFailed?(hostId: string): boolean;
}

export class VmActionService {
  readonly #kinds = new Map<VmActionName, TaskKind<ActionParams>>();

  constructor(
    private readonly inventory: InventoryService,
    private readonly connections: ConnectionService,
    private readonly tasks: TaskService,
    /** Absent: no start or move is refused for high availability's sake. */
    private readonly admission?: ActionAdmission,
  ) {
    for (const name of vmActionNames) {
      const kind = tasks.register({
        name: `vm.${name}`,
        params: ActionParams,
        run: (context) => this.#run(name, context),
        recover: (task) => this.#recover(name, task),
        // A migration's run after a restart settles what the one before left under way: a VM
        // is never left paused between two hosts for want of attempts.
        ...(name === 'migrate' ? { maxAttempts: 10 } : {}),
      });
      this.#kinds.set(name, kind);
    }
  }

  /**
   * After a restart, before connections report: a migration between connections that was under way
   * may have landed, so its destination may report the VM for a while (its recovery settles the task).
   */
  async allowInterruptedMoves(until: number): Promise<void> {
    for (const task of await this.tasks.unfinished(this.#kinds.get('migrate')!)) {
      const target = this.inventory.index.get(String(task.params.targetHostId));
      if (task.targetId && target?.connectionId)
        this.inventory.handovers.allowUntil(task.targetId, target.connectionId, until);
    }
  }

  /** Checks and queues an action; returns the task (answered with 202). */
  async request(
    action: VmActionName,
    vmId: string,
    params: VmActionRequest,
    owner: Actor,
    requestId?: string,
    /**
     * High availability's own starts: not subject to its admission control (`admission: false`),
     * and `prepare` writes what they record in the task's transaction.
     */
    internal: { admission?: false; prepare?: (tx: Tx, taskId: string) => Promise<void> } = {},
  ): Promise<Task> {
    const spec = specs[action];
    const vm = this.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    if (vm.status === 'missing')
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing from its hypervisor`, {
        status: vm.status,
      });
    const driver = this.connections.driver(vm.connectionId!);
    if (!driver.info.capabilities.includes(spec.capability)) {
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections cannot ${action} VMs`,
        { capability: spec.capability, type: driver.info.type },
      );
    }
    const power = (vm.facts['power.state'] as PowerState | undefined) ?? 'unknown';
    if (!spec.from.includes(power)) {
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is ${power}; ${action} needs it ${spec.from.join(' or ')}`,
        { powerState: power, action },
      );
    }
    // A suspended VM is not restarted by a failover: resuming it adds one to protect, as a start does.
    if ((action === 'start' || action === 'resume') && internal.admission !== false)
      this.admission?.admitStart(vm.id, action);
    const taskParams: ActionParams = { ...params, vmName: vm.name };
    if (action === 'migrate') {
      const datastore =
        typeof params.targetDatastoreId === 'string'
          ? this.inventory.resolve('datastore', params.targetDatastoreId)
          : undefined;
      if (datastore) {
        if (!driver.info.capabilities.includes('vm.relocateStorage'))
          throw new ZenithError(
            'ZEN_UNSUPPORTED',
            `${driver.info.type} connections cannot move a VM to another datastore`,
            { capability: 'vm.relocateStorage', type: driver.info.type },
          );
        if (datastore.connectionId !== vm.connectionId || datastore.status !== 'present')
          throw new ZenithError(
            'ZEN_INVALID_STATE',
            `datastore ${datastore.name} is not a present datastore of ${vm.name}'s connection`,
          );
        taskParams.targetDatastoreId = datastore.id;
        taskParams.targetDatastoreExternalId = datastore.externalId;
        taskParams.targetDatastoreName = datastore.name;
      }
      if (typeof params.targetHostId !== 'string' && !datastore)
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          'migrate needs targetHostId, targetDatastoreId or both',
        );
      const target =
        typeof params.targetHostId === 'string'
          ? this.inventory.resolve('host', params.targetHostId)
          : this.inventory.get(String(vm.computed['location.hostId']));
      // To another connection's host: both ends' migration facets must fit each other.
      if (target.connectionId !== vm.connectionId)
        migrationEnds(this.connections, vm.connectionId!, target.connectionId!, target.id);
      if (target.id === vm.computed['location.hostId'] && !datastore)
        throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} already runs on ${target.name}`);
      if (target.status !== 'present')
        throw new ZenithError('ZEN_INVALID_STATE', `host ${target.name} is missing`);
      if (target.computed['host.mode'])
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `host ${target.name} is in maintenance (${String(target.computed['host.mode'])})`,
          { mode: target.computed['host.mode'] },
        );
      if (target.id !== vm.computed['location.hostId'])
        this.admission?.admitMigration(vm.id, target.id);
      taskParams.targetHostId = target.id;
      taskParams.targetHostName = target.name;
      taskParams.sourceHostId = stringOrNull(vm.computed['location.hostId']);
      if (vm.externalId) taskParams.sourceExternalId = vm.externalId;
    }
    return this.tasks.submit({
      kind: this.#kinds.get(action)!,
      targetId: vm.id,
      params: taskParams,
      owner,
      ...(requestId ? { requestId } : {}),
      ...(internal.prepare ? { prepare: internal.prepare } : {}),
    });
  }

  async #run(action: VmActionName, context: TaskRunContext<ActionParams>): Promise<unknown> {
    const spec = specs[action];
    const vm = this.inventory.get(context.task.targetId!);
    const targetHost =
      action === 'migrate' ? this.inventory.get(String(context.task.params.targetHostId)) : null;
    // A migration's run after a restart: handed over already, over (restarted by high
    // availability), or to settle once both ends are back (migration-retry.ts).
    if (targetHost && context.task.attempt > 1) {
      const { sourceHostId, sourceExternalId } = context.task.params;
      const admission = this.admission;
      const before = await beforeMigrationRetry(
        {
          inventory: this.inventory,
          connections: this.connections,
          ...(admission?.hostFailed
            ? { hostFailed: (hostId: string) => admission.hostFailed!(hostId) }
            : {}),
        },
        {
          vm,
          targetHost,
          sourceHostId: sourceHostId ?? null,
          migrationId: sourceExternalId ?? null,
          since: context.task.createdAt,
          signal: context.signal,
        },
      );
      if (before === 'handed-over')
        return {
          powerState: vm.facts['power.state'] ?? null,
          hostId: vm.computed['location.hostId'] ?? null,
          status: vm.status,
          totalTimeMs: null,
          downtimeMs: null,
          transferredBytes: null,
        };
    }
    const driver = this.connections.driver(vm.connectionId!);
    if (targetHost && targetHost.connectionId !== vm.connectionId) {
      const params = context.task.params;
      const options = {
        ...(typeof params.maxBandwidthBytesPerSecond === 'number'
          ? { maxBandwidthBytesPerSecond: params.maxBandwidthBytesPerSecond }
          : {}),
        ...(typeof params.maxDowntimeMs === 'number'
          ? { maxDowntimeMs: params.maxDowntimeMs }
          : {}),
        ...(params.withStorage === true ? { withStorage: true } : {}),
        ...(typeof params.multifdChannels === 'number'
          ? { multifdChannels: params.multifdChannels }
          : {}),
        ...(params.autoConverge === true ? { autoConverge: true } : {}),
      };
      const admission = this.admission;
      const deps = {
        inventory: this.inventory,
        connections: this.connections,
        ...(admission?.hostFailed
          ? { hostFailed: (hostId: string) => admission.hostFailed!(hostId) }
          : {}),
      };
      const actionContext = {
        signal: context.signal,
        progress: (update: ActionProgress) => context.progress(update),
      };
      // Only while this migration runs may the destination's report take over the VM's identity.
      const release = this.inventory.handovers.hold(vm.id, targetHost.connectionId!);
      let stats;
      try {
        stats = await migrateAcrossHosts(
          deps,
          vm,
          targetHost,
          options,
          actionContext,
          context.task.attempt > 1,
        );
      } finally {
        release();
      }
      const moved = this.inventory.get(vm.id);
      return {
        powerState: moved.facts['power.state'] ?? null,
        hostId: moved.computed['location.hostId'] ?? null,
        status: moved.status,
        ...stats,
      };
    }
    const target = targetHost?.externalId ?? null;
    const started = Date.now();
    const after = await spec.perform(
      driver,
      vm,
      { signal: context.signal, progress: (update) => context.progress(update) },
      context.task.params,
      target,
    );
    if (after) await this.inventory.applyChanges(vm.connectionId!, [after]);
    else
      await this.inventory.applyChanges(
        vm.connectionId!,
        [],
        [{ kind: 'vm', externalId: vm.externalId! }],
      );
    const now = this.inventory.get(vm.id);
    return {
      powerState: now.facts['power.state'] ?? null,
      hostId: now.computed['location.hostId'] ?? null,
      status: now.status,
      durationMs: Date.now() - started,
    };
  }

  async #recover(
    action: VmActionName,
    task: Task<ActionParams>,
  ): Promise<'done' | 'retry' | 'interrupted'> {
    const spec = specs[action];
    const vm = this.inventory.index.get(task.targetId ?? '');
    if (spec.reaches === 'gone') return !vm || vm.status === 'missing' ? 'done' : 'retry';
    // Between connections, a VM hidden by both ends (paused after the switch-over, not yet
    // resumed at the destination) reads missing: the run after the restart settles it.
    const target = this.inventory.index.get(String(task.params.targetHostId ?? ''));
    // Across connections, always run again: a migration handed over already still has the
    // source's paused copy to end (#handedOverBefore), one cut off earlier is settled.
    const source = this.inventory.index.get(String(task.params.sourceHostId ?? ''));
    const from = source?.connectionId ?? vm?.connectionId;
    if (action === 'migrate' && vm && target && from && target.connectionId !== from)
      return 'retry';
    if (!vm || vm.status === 'missing') return 'interrupted';
    if (spec.reaches === 'moved')
      return vm.computed['location.hostId'] === task.params.targetHostId ? 'done' : 'retry';
    if (spec.reaches === null) return 'interrupted';
    return vm.facts['power.state'] === spec.reaches ? 'done' : 'retry';
  }
}

function stringOrNull(value: FactValue | undefined): string | null {
  return typeof value === 'string' ? value : null;
}
