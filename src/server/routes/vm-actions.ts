import {
  cloneVm,
  createVm,
  deleteVm,
  migrateVm,
  reconfigureVm,
  renameVm,
  vmPowerActions,
} from '../../api/vms.js';
import type { AccessDataGuard } from '../../services/identity/access-data-guard.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { VmActionService } from '../../services/vms/vm-actions.js';
import type { VmCloneService } from '../../services/vms/vm-clone.js';
import type { VmCreateService } from '../../services/vms/vm-create.js';
import type { VmEditService } from '../../services/vms/vm-edit.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { ReplicationService } from '../../services/replication/replication-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface VmActionRouteServices {
  inventory: InventoryService;
  accessData: AccessDataGuard;
  vms: VmActionService;
  vmCreation: VmCreateService;
  vmClones: VmCloneService;
  vmEdits: VmEditService;
  replication: ReplicationService;
}

export async function vmActionRoutes(
  app: Api,
  { inventory, accessData, vms, vmCreation, vmClones, vmEdits, replication }: VmActionRouteServices,
): Promise<void> {
  const vmId = (idOrName: string) => inventory.resolve('vm', idOrName).id;
  const onVm = [{ param: 'id', kind: 'vm' }] as const;

  for (const [action, spec] of Object.entries(vmPowerActions) as Array<
    [keyof typeof vmPowerActions, (typeof vmPowerActions)[keyof typeof vmPowerActions]]
  >) {
    serve(app, spec, { audit: false, scope: [...onVm] }, async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        vms.request(action, vmId(request.params.id), {}, actor, requestId),
      ),
    );
  }

  serve(
    app,
    migrateVm,
    {
      audit: false,
      scope: [
        ...onVm,
        { body: 'targetHostId', kind: 'host' },
        { body: 'targetDatastoreId', kind: 'datastore' },
      ],
    },
    async (request, reply) =>
      acceptTask(request, reply, (actor, requestId) =>
        vms.request('migrate', vmId(request.params.id), { ...request.body }, actor, requestId),
      ),
  );

  serve(
    app,
    createVm,
    { audit: false, scope: [{ body: 'hostId', kind: 'host' }] },
    async (request, reply) => {
      const { hostId, tags, facts } = request.body;
      // Tags and user facts that selectors or conditions read would decide who reaches the new VM.
      accessData.checkNew(
        principalOf(request),
        hostId === undefined ? null : inventory.resolve('host', hostId).id,
        'vm',
        { ...(facts ? { facts } : {}), ...(tags ? { addTags: tags } : {}) },
      );
      return acceptTask(request, reply, (actor, requestId) =>
        vmCreation.request(request.body, actor, requestId),
      );
    },
  );

  serve(app, cloneVm, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      vmClones.request(vmId(request.params.id), request.body, actor, requestId),
    ),
  );
  serve(app, renameVm, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      vmEdits.rename(vmId(request.params.id), request.body.name, actor, requestId),
    ),
  );
  serve(app, reconfigureVm, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      vmEdits.reconfigure(vmId(request.params.id), request.body, actor, requestId),
    ),
  );
  serve(app, deleteVm, { audit: false, scope: [...onVm] }, async (request, reply) => {
    const id = vmId(request.params.id);
    // A replicated VM deleted would leave its replica, and cycles failing, at the other site:
    // replication is stopped first (which removes the replica), as an operator means it.
    const replicated = await replication.ofVm(id).catch((error: unknown) => {
      if (isZenithError(error) && error.code === 'ZEN_NOT_FOUND') return null;
      throw error;
    });
    if (replicated)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${replicated.vmName} is replicated: stop replicating it first (DELETE /vms/${id}/replication removes its replica), then delete it`,
        { vmId: id, replication: replicated.id },
      );
    return acceptTask(request, reply, (actor, requestId) =>
      vms.request('delete', id, {}, actor, requestId),
    );
  });
}
