/**
 * The sizes a VM had over time (vCPUs, memory, disk), so that a VM resized in
 * the middle of a period is metered at the size it had in each part. Written
 * in the reconcile transaction whenever a VM appears or one of its allocation
 * facts changes.
 */
import type { Tx } from '../../store/store.js';
import type { Facts, ManagedObject } from './model.js';

export const allocationFacts = ['cpu.count', 'memory.bytes', 'disk.totalBytes'] as const;

export interface Allocation {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
}

export function allocationOf(facts: Facts): Allocation {
  const number = (key: string) => {
    const value = facts[key];
    return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
  };
  return {
    cpus: Math.round(number('cpu.count')),
    memoryBytes: Math.round(number('memory.bytes')),
    diskBytes: Math.round(number('disk.totalBytes')),
  };
}

const chunk = 500;

/**
 * Records the sizes of new VMs and of VMs whose allocation changed. `previous` is the object as
 * it was before the change: a VM known from before this history existed gets its earlier size
 * recorded from its creation, so the time before the change keeps that size.
 */
export async function recordAllocations(
  tx: Tx,
  changes: Array<{ isNew: boolean; changedKeys: string[]; object: ManagedObject }>,
  previous: (id: string) => ManagedObject | undefined,
  now: number,
): Promise<void> {
  const rows: Array<{
    vm_id: string;
    from_ts: number;
    cpus: number;
    memory_bytes: number;
    disk_bytes: number;
  }> = [];
  const row = (vmId: string, from: number, allocation: Allocation) =>
    rows.push({
      vm_id: vmId,
      from_ts: from,
      cpus: allocation.cpus,
      memory_bytes: allocation.memoryBytes,
      disk_bytes: allocation.diskBytes,
    });
  for (const change of changes) {
    const object = change.object;
    if (object.kind !== 'vm' || object.status !== 'present') continue;
    if (change.isNew) {
      row(object.id, now, allocationOf(object.facts));
      continue;
    }
    if (!change.changedKeys.some((key) => (allocationFacts as readonly string[]).includes(key)))
      continue;
    const before = previous(object.id);
    const next = allocationOf(object.facts);
    if (before) {
      const old = allocationOf(before.facts);
      if (
        old.cpus === next.cpus &&
        old.memoryBytes === next.memoryBytes &&
        old.diskBytes === next.diskBytes
      )
        continue;
      const known = await tx
        .selectFrom('vm_allocations')
        .select('id')
        .where('vm_id', '=', object.id)
        .limit(1)
        .executeTakeFirst();
      if (!known && before.createdAt < now) row(object.id, before.createdAt, old);
    }
    row(object.id, now, next);
  }
  for (let i = 0; i < rows.length; i += chunk)
    await tx
      .insertInto('vm_allocations')
      .values(rows.slice(i, i + chunk))
      .execute();
}
