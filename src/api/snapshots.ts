/** Snapshots of a VM: read live from its hypervisor; taking, reverting and deleting are tasks. */
import { Type, type Static } from 'typebox';
import { IdOrName, Items } from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

const VmParams = Type.Object({ id: IdOrName }, { additionalProperties: false });
const SnapshotParams = Type.Object(
  { id: IdOrName, snapshot: IdOrName },
  { additionalProperties: false },
);

export const SnapshotView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.Number(),
  powerState: Type.String(),
});
export type SnapshotView = Static<typeof SnapshotView>;

export const listSnapshots = operation({
  method: 'GET',
  path: '/vms/:id/snapshots',
  auth: 'inventory.read',
  tag: 'snapshots',
  summary: 'Snapshots of a VM, read live from its hypervisor',
  params: VmParams,
  success: { 200: Items(SnapshotView) },
  errors: [409, 422, 502],
});

export const createSnapshot = operation({
  method: 'POST',
  path: '/vms/:id/snapshots',
  auth: 'vm.snapshot',
  tag: 'snapshots',
  summary: 'Take a snapshot (with memory when the VM runs); answers 202 with the task',
  params: VmParams,
  body: Type.Object(
    { name: Type.String({ minLength: 1, maxLength: 64 }) },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [409, 422],
});

export const revertSnapshot = operation({
  method: 'POST',
  path: '/vms/:id/snapshots/:snapshot/revert',
  auth: 'vm.snapshot',
  tag: 'snapshots',
  summary: 'Revert to a snapshot (by id or name); answers 202 with the task',
  params: SnapshotParams,
  success: { 202: TaskView },
  errors: [409, 422],
});

export const deleteSnapshot = operation({
  method: 'DELETE',
  path: '/vms/:id/snapshots/:snapshot',
  auth: 'vm.snapshot',
  tag: 'snapshots',
  summary: 'Delete a snapshot (by id or name); answers 202 with the task',
  params: SnapshotParams,
  success: { 202: TaskView },
  errors: [409, 422],
});
