/**
 * What the VM services need of quotas: the group a request acts for, a
 * reservation in the transaction that records the task, and around the
 * task's work, its settlement (the VM now counts instead) or release (the
 * work failed).
 */
import { Type } from 'typebox';
import type { Tx } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { Task } from '../tasks/task-service.js';
import type { Amounts, OwningGroup, QuotaService } from './quota-service.js';

/** What a task's parameters say of its reservation: its group, and who owns the VM it makes. */
export const quotaHoldParams = {
  group: Type.Optional(Type.Object({ id: Type.String(), name: Type.String() })),
  ownerName: Type.Optional(Type.String()),
};

type QuotaHeldTask = Task<{ group?: OwningGroup; ownerName?: string }>;

export class QuotaGate {
  constructor(
    private readonly quotas: QuotaService,
    private readonly inventory: InventoryService,
  ) {}

  owningGroup(actor: Actor, requested: string | undefined): Promise<OwningGroup | null> {
    return this.quotas.owningGroup(actor, requested);
  }

  groupOfVm(vmId: string): Promise<OwningGroup | null> {
    return this.quotas.groupOfVm(vmId);
  }

  reserve(tx: Tx, taskId: string, group: OwningGroup, amounts: Amounts): Promise<void> {
    return this.quotas.reserve(tx, taskId, group, amounts);
  }

  /**
   * Runs a task's work that its reservation covers (params.group). If the work fails, the reservation
   * ends; if it made a VM (result.vmId, params.ownerName), the VM joins the group as it ends.
   */
  async holdWhile(task: QuotaHeldTask, work: () => Promise<unknown>): Promise<unknown> {
    const group = task.params.group;
    if (!group) return work();
    let result: unknown;
    try {
      result = await work();
    } catch (error) {
      await this.quotas.release(task.id);
      throw error;
    }
    const vmId = (result as { vmId?: unknown } | null)?.vmId;
    const owner = task.params.ownerName;
    const vm =
      typeof vmId === 'string' && typeof owner === 'string' ? this.inventory.index.get(vmId) : null;
    await this.quotas.settle(
      task.id,
      group,
      vm && owner !== undefined ? { id: vm.id, createdAt: vm.createdAt, owner } : null,
    );
    return result;
  }

  /** After a crash: the task's VM turned out to exist, so it joins the group and the reservation ends. */
  async settleRecovered(task: QuotaHeldTask, vmId: string): Promise<void> {
    const { group, ownerName: owner } = task.params;
    const vm = this.inventory.index.get(vmId);
    if (!group || owner === undefined || !vm) return;
    await this.quotas.settle(task.id, group, { id: vm.id, createdAt: vm.createdAt, owner });
  }
}
