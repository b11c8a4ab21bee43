/**
 * Renaming a VM and changing its CPUs and memory, as tasks on the VM. Checked
 * before anything is queued: the VM exists and is present, its connection
 * can do it, the new name is valid and free on that connection, the sizes
 * are sane.
 */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { Capability, HypervisorDriver } from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import { quotaHoldParams, type QuotaGate } from '../quotas/quota-gate.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';

export interface VmReconfigureRequest {
  cpus?: number;
  memoryBytes?: number;
}

const vmName = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
const MiB = 1024 * 1024;

/** The new name, and the one it had when asked. */
const RenameParams = Type.Object({ name: Type.String(), vmName: Type.Optional(Type.String()) });
/** The sizes asked for; a growth's reservation is held for the VM's group. */
const ReconfigureParams = Type.Object({
  cpus: Type.Optional(Type.Number()),
  memoryBytes: Type.Optional(Type.Number()),
  vmName: Type.Optional(Type.String()),
  ...quotaHoldParams,
});

export class VmEditService {
  readonly #rename: TaskKind<Static<typeof RenameParams>>;
  readonly #reconfigure: TaskKind<Static<typeof ReconfigureParams>>;

  constructor(
    private readonly inventory: InventoryService,
    private readonly connections: ConnectionService,
    private readonly tasks: TaskService,
    private readonly quotas: QuotaGate,
  ) {
    this.#rename = tasks.register({
      name: 'vm.rename',
      params: RenameParams,
      run: async ({ task, signal, progress }) => {
        const { vm, driver } = this.#target(task.targetId!, 'vm.rename');
        const after = await driver.renameVm!(vm.externalId!, task.params.name, {
          signal,
          progress,
        });
        await this.inventory.applyChanges(vm.connectionId!, [after]);
        return { name: after.name, previousName: task.params.vmName };
      },
      // Done when the VM carries the new name; renaming again is harmless otherwise.
      recover: async (task) =>
        this.inventory.index.get(task.targetId ?? '')?.name === task.params.name ? 'done' : 'retry',
    });
    this.#reconfigure = tasks.register({
      name: 'vm.reconfigure',
      params: ReconfigureParams,
      run: async ({ task, signal, progress }) =>
        this.quotas.holdWhile(task, async () => {
          const { vm, driver } = this.#target(task.targetId!, 'vm.reconfigure');
          const change = task.params;
          const after = await driver.reconfigureVm!(
            vm.externalId!,
            {
              ...(typeof change.cpus === 'number' ? { cpus: change.cpus } : {}),
              ...(typeof change.memoryBytes === 'number'
                ? { memoryBytes: change.memoryBytes }
                : {}),
            },
            { signal, progress },
          );
          await this.inventory.applyChanges(vm.connectionId!, [after]);
          return {
            cpus: after.facts['cpu.count'] ?? null,
            memoryBytes: after.facts['memory.bytes'] ?? null,
          };
        }),
      // Setting the same sizes again lands in the same state.
      recover: async () => 'retry',
    });
  }

  async rename(vmId: string, name: string, owner: Actor, requestId?: string): Promise<Task> {
    if (!vmName.test(name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${name}' is not a valid VM name (letters, digits, . _ -, at most 63)`,
        { name },
      );
    const { vm } = this.#target(vmId, 'vm.rename');
    if (vm.name === name)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} already has that name`);
    const clash = this.inventory.index
      .query({
        kind: 'vm',
        filters: [{ key: 'name', op: '=', values: [name], text: `name=${name}` }],
        limit: 10,
      })
      .items.some((other) => other.connectionId === vm.connectionId && other.status === 'present');
    if (clash)
      throw new ZenithError('ZEN_CONFLICT', `a VM named '${name}' exists on this connection`, {
        name,
      });
    return this.tasks.submit({
      kind: this.#rename,
      targetId: vm.id,
      params: { name, vmName: vm.name },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  async reconfigure(
    vmId: string,
    change: VmReconfigureRequest,
    owner: Actor,
    requestId?: string,
  ): Promise<Task> {
    if (change.cpus === undefined && change.memoryBytes === undefined)
      throw new ZenithError('ZEN_BAD_REQUEST', 'reconfigure needs cpus, memoryBytes or both');
    if (
      change.cpus !== undefined &&
      (!Number.isInteger(change.cpus) || change.cpus < 1 || change.cpus > 512)
    )
      throw new ZenithError('ZEN_BAD_REQUEST', 'cpus must be a whole number from 1 to 512', {
        cpus: change.cpus,
      });
    if (
      change.memoryBytes !== undefined &&
      (change.memoryBytes < 16 * MiB || change.memoryBytes % MiB !== 0)
    )
      throw new ZenithError('ZEN_BAD_REQUEST', 'memoryBytes must be whole MiB, at least 16 MiB', {
        memoryBytes: change.memoryBytes,
      });
    const { vm } = this.#target(vmId, 'vm.reconfigure');
    // Growing a VM takes more of its group's quotas: the growth is reserved like a new VM's size.
    const current = (key: string) => {
      const value = vm.facts[key];
      return typeof value === 'number' ? value : 0;
    };
    const growth = {
      vcpus: Math.max(0, (change.cpus ?? 0) - current('cpu.count')),
      memoryBytes: Math.max(0, (change.memoryBytes ?? 0) - current('memory.bytes')),
      diskBytes: 0,
      vms: 0,
    };
    const group =
      growth.vcpus > 0 || growth.memoryBytes > 0 ? await this.quotas.groupOfVm(vm.id) : null;
    return this.tasks.submit({
      kind: this.#reconfigure,
      targetId: vm.id,
      params: {
        ...(change.cpus !== undefined ? { cpus: change.cpus } : {}),
        ...(change.memoryBytes !== undefined ? { memoryBytes: change.memoryBytes } : {}),
        vmName: vm.name,
        ...(group ? { group } : {}),
      },
      owner,
      ...(requestId ? { requestId } : {}),
      ...(group ? { prepare: (tx, taskId) => this.quotas.reserve(tx, taskId, group, growth) } : {}),
    });
  }

  #target(vmId: string, capability: Capability): { vm: ManagedObject; driver: HypervisorDriver } {
    const vm = this.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    if (vm.status === 'missing')
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing from its hypervisor`);
    const driver = this.connections.driver(vm.connectionId!);
    const present =
      capability === 'vm.rename'
        ? driver.renameVm !== undefined
        : driver.reconfigureVm !== undefined;
    if (!driver.info.capabilities.includes(capability) || !present)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections cannot ${capability === 'vm.rename' ? 'rename' : 'reconfigure'} VMs`,
        { capability, type: driver.info.type },
      );
    return { vm, driver };
  }
}
