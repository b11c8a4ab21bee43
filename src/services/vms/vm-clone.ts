/**
 * Cloning a VM, as a task on the source VM (so it waits for, and holds off,
 * the source's other tasks). Checked before anything is queued: the source
 * exists and is stopped, its connection can clone, and the new name is valid
 * and free on that connection.
 */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { HypervisorDriver } from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { FactValue, ManagedObject } from '../inventory/model.js';
import { quotaHoldParams, type QuotaGate } from '../quotas/quota-gate.js';
import { amountsOfVm } from '../quotas/quota-service.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';

export interface VmCloneRequest {
  name: string;
  /** Share the source's disks copy-on-write instead of copying them. */
  linked?: boolean;
  /** The group the clone belongs to (and whose quotas it counts against); default: the requester's only group. */
  group?: string;
}

type CloneDriver = HypervisorDriver & Required<Pick<HypervisorDriver, 'cloneVm'>>;

const CloneParams = Type.Object({
  name: Type.String(),
  linked: Type.Optional(Type.Boolean()),
  vmName: Type.Optional(Type.String()),
  hostId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  ...quotaHoldParams,
});

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export class VmCloneService {
  readonly #clone: TaskKind<Static<typeof CloneParams>>;

  constructor(
    private readonly inventory: InventoryService,
    private readonly connections: ConnectionService,
    private readonly tasks: TaskService,
    private readonly quotas: QuotaGate,
  ) {
    this.#clone = tasks.register({
      name: 'vm.clone',
      params: CloneParams,
      run: async (context) =>
        this.quotas.holdWhile(context.task, async () => {
          const { name, linked } = context.task.params;
          const { vm, driver } = this.#source(context.task.targetId!);
          const clone = await driver.cloneVm(
            vm.externalId!,
            { name, ...(linked ? { linked: true } : {}) },
            { signal: context.signal, progress: (update) => context.progress(update) },
          );
          await this.inventory.applyChanges(vm.connectionId!, [clone]);
          const cloneId = this.inventory.index.idForExternal(
            vm.connectionId!,
            'vm',
            clone.externalId,
          );
          return {
            vmId: cloneId ?? null,
            name: clone.name,
            sourceId: vm.id,
            linked: linked === true,
          };
        }),
      // Done if a VM of that name now sits on the connection; otherwise the driver left nothing
      // behind, and cloning again is safe.
      recover: async (task) => {
        const source = this.inventory.index.get(task.targetId ?? '');
        if (!source) return 'interrupted';
        const clone = this.#existing(source, task.params.name);
        if (!clone) return 'retry';
        await this.quotas.settleRecovered(task, clone.id);
        return 'done';
      },
    });
  }

  async request(
    vmId: string,
    request: VmCloneRequest,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    if (!vmName.test(request.name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${request.name}' is not a valid VM name (letters, digits, . _ -, at most 63)`,
        { name: request.name },
      );
    const { vm } = this.#source(vmId);
    const power = vm.facts['power.state'] ?? 'unknown';
    if (power !== 'stopped')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} is ${String(power)}; clone needs it stopped`,
        { powerState: power, action: 'clone' },
      );
    if (this.#existing(vm, request.name))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a VM named '${request.name}' exists on this connection`,
        { name: request.name },
      );
    const group = await this.quotas.owningGroup(owner, request.group);
    return this.tasks.submit({
      kind: this.#clone,
      targetId: vm.id,
      params: {
        name: request.name,
        linked: request.linked === true,
        vmName: vm.name,
        hostId: stringOrNull(vm.computed['location.hostId']),
        ...(group ? { group, ownerName: owner.name } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      // A clone takes what its source takes (a linked clone's disk too: it may grow to that size).
      ...(group
        ? { prepare: (tx, taskId) => this.quotas.reserve(tx, taskId, group, amountsOfVm(vm.facts)) }
        : {}),
    });
  }

  #source(vmId: string): { vm: ManagedObject; driver: CloneDriver } {
    const vm = this.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    if (vm.status === 'missing')
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing from its hypervisor`);
    const driver = this.connections.driver(vm.connectionId!);
    if (!driver.info.capabilities.includes('vm.clone') || !driver.cloneVm)
      throw new ZenithError('ZEN_UNSUPPORTED', `${driver.info.type} connections cannot clone VMs`, {
        capability: 'vm.clone',
        type: driver.info.type,
      });
    return { vm, driver: driver as CloneDriver };
  }

  /** A present VM of this name on the source's connection. */
  #existing(source: ManagedObject, name: string): ManagedObject | undefined {
    return this.inventory.index
      .query({
        kind: 'vm',
        filters: [{ key: 'name', op: '=', values: [name], text: `name=${name}` }],
        limit: 10,
      })
      .items.find((vm) => vm.connectionId === source.connectionId && vm.status === 'present');
  }
}

function stringOrNull(value: FactValue | undefined): string | null {
  return typeof value === 'string' ? value : null;
}
