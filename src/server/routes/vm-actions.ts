import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import type { Permission } from '../../services/identity/roles.js';
import type { VmActionName } from '../../services/vms/vm-actions.js';
import { FactValueInput, IdParams, TaskView } from '../schemas.js';
import { acceptTask } from '../task-reply.js';
import { principalOf } from '../auth.js';

const powerActions: Array<{ action: VmActionName; summary: string }> = [
  { action: 'start', summary: 'Power on' },
  { action: 'stop', summary: 'Power off at once (like pulling the plug)' },
  { action: 'shutdown', summary: 'Ask the guest to shut down' },
  { action: 'reboot', summary: 'Reboot the guest' },
  { action: 'reset', summary: 'Reset at once (like the reset button); a suspended VM runs again' },
  { action: 'suspend', summary: 'Suspend (keep memory, stop running)' },
  { action: 'resume', summary: 'Resume a suspended VM' },
];

const Accepted = { 202: TaskView };

export async function vmActionRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const vmId = (idOrName: string) => plane.inventory.resolve('vm', idOrName).id;

  for (const { action, summary } of powerActions) {
    app.post(
      `/vms/:id/${action}`,
      {
        config: {
          permission: 'vm.power' satisfies Permission,
          audit: false,
          scope: [{ param: 'id', kind: 'vm' }],
        },
        schema: {
          tags: ['vm actions'],
          summary: `${summary}; answers 202 with the task`,
          params: IdParams,
          response: Accepted,
        },
      },
      async (request, reply) =>
        acceptTask(request, reply, (actor, requestId) =>
          plane.vms.request(action, vmId(request.params.id), {}, actor, requestId),
        ),
    );
  }

  app.post(
    '/vms/:id/migrate',
    {
      config: {
        permission: 'vm.migrate',
        audit: false,
        scope: [
          { param: 'id', kind: 'vm' },
          { body: 'targetHostId', kind: 'host' },
          { body: 'targetDatastoreId', kind: 'datastore' },
        ],
      },
      schema: {
        tags: ['vm actions'],
        summary:
          'Live-migrate to another host and/or datastore (by id or name); answers 202 with the task',
        params: IdParams,
        body: Type.Object(
          {
            targetHostId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            targetDatastoreId: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 200,
                description:
                  "Move the VM's disks to this datastore (by id or name), with or without another host (vSphere)",
              }),
            ),
            withStorage: Type.Optional(Type.Boolean()),
            maxBandwidthBytesPerSecond: Type.Optional(Type.Integer({ minimum: 1024 * 1024 })),
            maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
            multifdChannels: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
            autoConverge: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: Accepted,
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.vms.request(
          'migrate',
          vmId(request.params.id),
          { ...request.body },
          actor,
          requestId,
        ),
      ),
  );

  app.post(
    '/vms',
    {
      config: { permission: 'vm.create', audit: false, scope: [{ body: 'hostId', kind: 'host' }] },
      schema: {
        tags: ['vm actions'],
        summary:
          'Create a VM on a host (by id or name), or where placement chooses by policy when no host is given; answers 202 with the task',
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 63 }),
            hostId: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 200,
                description: 'Where to create it; placement chooses when absent',
              }),
            ),
            type: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 64,
                description: 'The hypervisor type it needs (e.g. qemu, simulated)',
              }),
            ),
            tags: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
            facts: Type.Optional(
              Type.Record(Type.String({ maxLength: 128 }), FactValueInput, {
                maxProperties: 64,
                description:
                  'user.* facts set on the new VM (user.resourceGroup puts it in a group)',
              }),
            ),
            group: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 200,
                description:
                  'The group the VM belongs to and whose quotas it counts against (you must be in it); default: your only group',
              }),
            ),
            cpus: Type.Integer({ minimum: 1, maximum: 512 }),
            memoryBytes: Type.Integer({ minimum: 16 * 1024 * 1024 }),
            diskBytes: Type.Integer({ minimum: 0 }),
            options: Type.Optional(
              Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), {
                maxProperties: 32,
                description:
                  'Driver-specific settings, e.g. for QEMU: kernel, initrd, cmdline, baseImage, vnc, accelerator, nics',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: Accepted,
      },
    },
    async (request, reply) => {
      const { hostId, tags, facts } = request.body;
      // Tags and user facts that selectors or conditions read would decide who reaches the new VM.
      plane.accessData.checkNew(
        principalOf(request),
        hostId === undefined ? null : plane.inventory.resolve('host', hostId).id,
        'vm',
        { ...(facts ? { facts } : {}), ...(tags ? { addTags: tags } : {}) },
      );
      return acceptTask(request, reply, (actor, requestId) =>
        plane.vmCreation.request(request.body, actor, requestId),
      );
    },
  );

  app.post(
    '/vms/:id/clone',
    {
      config: { permission: 'vm.create', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['vm actions'],
        summary:
          'Clone a stopped VM (by id or name) under a new name, its disks copied or, with linked, shared copy-on-write; answers 202 with the task',
        params: IdParams,
        body: Type.Object(
          {
            group: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 200,
                description:
                  'The group the clone belongs to and whose quotas it counts against (you must be in it); default: your only group',
              }),
            ),
            name: Type.String({ minLength: 1, maxLength: 63 }),
            linked: Type.Optional(
              Type.Boolean({
                description:
                  'Share the source disks copy-on-write (fast, small); the source can then not be started, changed or deleted while the clone exists (QEMU)',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: Accepted,
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.vmClones.request(vmId(request.params.id), request.body, actor, requestId),
      ),
  );

  app.post(
    '/vms/:id/rename',
    {
      config: { permission: 'vm.create', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['vm actions'],
        summary: 'Rename a VM on its hypervisor; answers 202 with the task',
        params: IdParams,
        body: Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 63 }) },
          { additionalProperties: false },
        ),
        response: Accepted,
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.vmEdits.rename(vmId(request.params.id), request.body.name, actor, requestId),
      ),
  );

  app.post(
    '/vms/:id/reconfigure',
    {
      config: { permission: 'vm.create', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['vm actions'],
        summary: 'Change the CPU count and/or memory of a VM; answers 202 with the task',
        params: IdParams,
        body: Type.Object(
          {
            cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 512 })),
            memoryBytes: Type.Optional(Type.Integer({ minimum: 16 * 1024 * 1024 })),
          },
          { additionalProperties: false },
        ),
        response: Accepted,
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.vmEdits.reconfigure(vmId(request.params.id), request.body, actor, requestId),
      ),
  );

  app.delete(
    '/vms/:id',
    {
      config: { permission: 'vm.delete', audit: false, scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['vm actions'],
        summary: 'Delete a stopped VM; answers 202 with the task',
        params: IdParams,
        response: Accepted,
      },
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        plane.vms.request('delete', vmId(request.params.id), {}, actor, requestId),
      ),
  );
}
