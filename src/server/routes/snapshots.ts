import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import { TaskView } from '../schemas.js';
import { acceptTask } from '../task-reply.js';

const VmParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
const SnapshotParams = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 200 }),
    snapshot: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false },
);
const SnapshotView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.Number(),
  powerState: Type.String(),
});

export async function snapshotRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const vmId = (idOrName: string) => plane.inventory.resolve('vm', idOrName).id;

  app.get(
    '/vms/:id/snapshots',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['snapshots'],
        summary: 'Snapshots of a VM, read live from its hypervisor',
        params: VmParams,
        response: { 200: Type.Object({ items: Type.Array(SnapshotView) }) },
      },
    },
    async (request) => ({ items: await plane.snapshots.list(vmId(request.params.id)) }),
  );
  app.post(
    '/vms/:id/snapshots',
    {
      config: { permission: 'vm.snapshot', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['snapshots'],
        summary: 'Take a snapshot (with memory when the VM runs); answers 202 with the task',
        params: VmParams,
        body: Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 64 }) },
          { additionalProperties: false },
        ),
        response: { 202: TaskView },
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.snapshots.create(vmId(request.params.id), request.body.name, actor, requestId),
      ),
  );
  app.post(
    '/vms/:id/snapshots/:snapshot/revert',
    {
      config: { permission: 'vm.snapshot', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['snapshots'],
        summary: 'Revert to a snapshot (by id or name); answers 202 with the task',
        params: SnapshotParams,
        response: { 202: TaskView },
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.snapshots.revert(vmId(request.params.id), request.params.snapshot, actor, requestId),
      ),
  );
  app.delete(
    '/vms/:id/snapshots/:snapshot',
    {
      config: { permission: 'vm.snapshot', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['snapshots'],
        summary: 'Delete a snapshot (by id or name); answers 202 with the task',
        params: SnapshotParams,
        response: { 202: TaskView },
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.snapshots.remove(vmId(request.params.id), request.params.snapshot, actor, requestId),
      ),
  );
}
