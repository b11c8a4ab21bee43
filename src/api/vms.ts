/**
 * What is done to a VM: power actions, creation, clones, renames, reconfiguration, migration and
 * deletion (each answers 202 with the task), what its connection can do, and its metrics.
 */
import { Type, type Static } from 'typebox';
import { FactValueInput, IdOrName, IdParams, Tags } from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

/** The statuses a VM action refuses with before it is queued: its state, quotas, the driver. */
const refusedBeforeQueued = [409, 422] as const;

function powerAction(action: string, summary: string) {
  return operation({
    method: 'POST',
    path: `/vms/:id/${action}`,
    auth: 'vm.power',
    tag: 'vm actions',
    summary: `${summary}; answers 202 with the task`,
    params: IdParams,
    success: { 202: TaskView },
    errors: refusedBeforeQueued,
  });
}

export const startVm = powerAction('start', 'Power on');
export const stopVm = powerAction('stop', 'Power off at once (like pulling the plug)');
export const shutdownVm = powerAction('shutdown', 'Ask the guest to shut down');
export const rebootVm = powerAction('reboot', 'Reboot the guest');
export const resetVm = powerAction(
  'reset',
  'Reset at once (like the reset button); a suspended VM runs again',
);
export const suspendVm = powerAction('suspend', 'Suspend (keep memory, stop running)');
export const resumeVm = powerAction('resume', 'Resume a suspended VM');

/** The power actions by name, as the console and the CLI offer them. */
export const vmPowerActions = {
  start: startVm,
  stop: stopVm,
  shutdown: shutdownVm,
  reboot: rebootVm,
  reset: resetVm,
  suspend: suspendVm,
  resume: resumeVm,
} as const;
export type VmPowerAction = keyof typeof vmPowerActions;

export const migrateVm = operation({
  method: 'POST',
  path: '/vms/:id/migrate',
  auth: 'vm.migrate',
  tag: 'vm actions',
  summary:
    'Live-migrate to another host and/or datastore (by id or name); answers 202 with the task',
  params: IdParams,
  body: Type.Object(
    {
      targetHostId: Type.Optional(IdOrName),
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
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const NewVm = Type.Object(
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
    tags: Type.Optional(Tags),
    facts: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), FactValueInput, {
        maxProperties: 64,
        description: 'user.* facts set on the new VM (user.resourceGroup puts it in a group)',
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
);
export type NewVm = Static<typeof NewVm>;

export const createVm = operation({
  method: 'POST',
  path: '/vms',
  auth: 'vm.create',
  tag: 'vm actions',
  summary:
    'Create a VM on a host (by id or name), or where placement chooses by policy when no host is given; answers 202 with the task',
  body: NewVm,
  success: { 202: TaskView },
  errors: [404, ...refusedBeforeQueued],
});

export const cloneVm = operation({
  method: 'POST',
  path: '/vms/:id/clone',
  auth: 'vm.create',
  tag: 'vm actions',
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
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const renameVm = operation({
  method: 'POST',
  path: '/vms/:id/rename',
  auth: 'vm.create',
  tag: 'vm actions',
  summary: 'Rename a VM on its hypervisor; answers 202 with the task',
  params: IdParams,
  body: Type.Object(
    { name: Type.String({ minLength: 1, maxLength: 63 }) },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const reconfigureVm = operation({
  method: 'POST',
  path: '/vms/:id/reconfigure',
  auth: 'vm.create',
  tag: 'vm actions',
  summary: 'Change the CPU count and/or memory of a VM; answers 202 with the task',
  params: IdParams,
  body: Type.Object(
    {
      cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 512 })),
      memoryBytes: Type.Optional(Type.Integer({ minimum: 16 * 1024 * 1024 })),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const deleteVm = operation({
  method: 'DELETE',
  path: '/vms/:id',
  auth: 'vm.delete',
  tag: 'vm actions',
  summary: 'Delete a stopped VM; answers 202 with the task',
  params: IdParams,
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const VmCapabilities = Type.Object({
  vmId: Type.String(),
  connectionType: Type.String(),
  simulated: Type.Boolean(),
  capabilities: Type.Array(Type.String()),
});
export type VmCapabilities = Static<typeof VmCapabilities>;

export const vmCapabilities = operation({
  method: 'GET',
  path: '/vms/:id/capabilities',
  auth: 'inventory.read',
  tag: 'vm actions',
  summary:
    "What the VM's connection can do (its driver's capabilities: vm.start, vm.clone, vm.rename, ...; vm.backup where its disks can be backed up); 409 ZEN_CONNECTION_DISCONNECTED while it is not connected",
  params: IdParams,
  success: { 200: VmCapabilities },
  errors: [409],
});
