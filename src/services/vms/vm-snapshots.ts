/** Snapshots of VMs: listed live from the driver; created, reverted and deleted as tasks. */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type {
  ActionContext,
  DiscoveredVm,
  HypervisorDriver,
  SnapshotInfo,
} from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';

type SnapshotDriver = HypervisorDriver &
  Required<
    Pick<HypervisorDriver, 'listSnapshots' | 'createSnapshot' | 'revertSnapshot' | 'deleteSnapshot'>
  >;

const snapshotName = /^[a-zA-Z0-9][a-zA-Z0-9 ._:-]{0,63}$/;

const CreateParams = Type.Object({ name: Type.String(), vmName: Type.Optional(Type.String()) });
/** A revert or delete: of the snapshot found by id or name when it was asked for. */
const OnSnapshotParams = Type.Object({
  snapshotId: Type.String(),
  snapshotName: Type.Optional(Type.String()),
  vmName: Type.Optional(Type.String()),
});
type OnSnapshotParams = Static<typeof OnSnapshotParams>;
type OnSnapshotKind = TaskKind<OnSnapshotParams>;

export class VmSnapshotService {
  readonly #create: TaskKind<Static<typeof CreateParams>>;
  readonly #revert: OnSnapshotKind;
  readonly #delete: OnSnapshotKind;

  constructor(
    private readonly inventory: InventoryService,
    private readonly connections: ConnectionService,
    private readonly tasks: TaskService,
  ) {
    this.#create = tasks.register({
      name: 'vm.snapshot.create',
      params: CreateParams,
      run: async ({ task, signal, progress }) => {
        const { vm, driver } = this.#target(task.targetId!);
        const { snapshot, vm: after } = await driver.createSnapshot(
          vm.externalId!,
          task.params.name,
          { signal, progress },
        );
        await this.inventory.applyChanges(vm.connectionId!, [after]);
        return snapshot;
      },
      recover: async (task) =>
        (await this.#find(task.targetId!, task.params.name)) ? 'done' : 'retry',
    });
    this.#revert = tasks.register({
      name: 'vm.snapshot.revert',
      params: OnSnapshotParams,
      run: async ({ task, signal, progress }) => {
        const after = await this.#changeSnapshot('revertSnapshot', task, { signal, progress });
        return { powerState: after.powerState };
      },
      // Reverting again lands in the same state.
      recover: async () => 'retry',
    });
    this.#delete = tasks.register({
      name: 'vm.snapshot.delete',
      params: OnSnapshotParams,
      run: async ({ task, signal, progress }) => {
        await this.#changeSnapshot('deleteSnapshot', task, { signal, progress });
        return { deleted: task.params.snapshotId };
      },
      recover: async (task) =>
        (await this.#find(task.targetId!, task.params.snapshotId)) ? 'retry' : 'done',
    });
  }

  async list(vmId: string): Promise<SnapshotInfo[]> {
    const { vm, driver } = this.#target(vmId);
    return driver.listSnapshots(vm.externalId!);
  }

  async create(vmId: string, name: string, owner: Actor, requestId?: string): Promise<Task> {
    if (!snapshotName.test(name))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${name}' is not a valid snapshot name (letters, digits, space and . _ : -, at most 64)`,
        { name },
      );
    const { vm } = this.#target(vmId);
    if (await this.#find(vm.id, name))
      throw new ZenithError('ZEN_CONFLICT', `${vm.name} already has a snapshot named '${name}'`, {
        name,
      });
    return this.tasks.submit({
      kind: this.#create,
      targetId: vm.id,
      params: { name, vmName: vm.name },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  revert(vmId: string, snapshot: string, owner: Actor, requestId?: string): Promise<Task> {
    return this.#onExisting(this.#revert, vmId, snapshot, owner, requestId);
  }

  remove(vmId: string, snapshot: string, owner: Actor, requestId?: string): Promise<Task> {
    return this.#onExisting(this.#delete, vmId, snapshot, owner, requestId);
  }

  /** Queues a task on a snapshot that must exist now (found by id or name). */
  async #onExisting(
    kind: OnSnapshotKind,
    vmId: string,
    snapshot: string,
    owner: Actor,
    requestId: string | undefined,
  ): Promise<Task> {
    const { vm } = this.#target(vmId);
    const found = await this.#find(vm.id, snapshot);
    if (!found)
      throw new ZenithError('ZEN_NOT_FOUND', `${vm.name} has no snapshot '${snapshot}'`, {
        snapshot,
      });
    return this.tasks.submit({
      kind,
      targetId: vm.id,
      params: { snapshotId: found.id, snapshotName: found.name, vmName: vm.name },
      owner,
      ...(requestId ? { requestId } : {}),
    });
  }

  /** Reverts to or deletes the task's snapshot, and takes in the VM as the driver leaves it. */
  async #changeSnapshot(
    action: 'revertSnapshot' | 'deleteSnapshot',
    task: Task<OnSnapshotParams>,
    context: ActionContext,
  ): Promise<DiscoveredVm> {
    const { vm, driver } = this.#target(task.targetId!);
    const after = await driver[action](vm.externalId!, task.params.snapshotId, context);
    await this.inventory.applyChanges(vm.connectionId!, [after]);
    return after;
  }

  async #find(vmId: string, idOrName: string): Promise<SnapshotInfo | undefined> {
    return (await this.list(vmId)).find((s) => s.id === idOrName || s.name === idOrName);
  }

  #target(vmId: string): { vm: ManagedObject; driver: SnapshotDriver } {
    const vm = this.inventory.get(vmId);
    if (vm.kind !== 'vm') throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`);
    if (vm.status === 'missing')
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing from its hypervisor`);
    const driver = this.connections.driver(vm.connectionId!);
    if (
      !driver.info.capabilities.includes('vm.snapshot') ||
      !driver.listSnapshots ||
      !driver.createSnapshot ||
      !driver.revertSnapshot ||
      !driver.deleteSnapshot
    ) {
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections do not support snapshots`,
        { capability: 'vm.snapshot' },
      );
    }
    return { vm, driver: driver as SnapshotDriver };
  }
}
