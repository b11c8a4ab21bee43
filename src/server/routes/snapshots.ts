import {
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  revertSnapshot,
} from '../../api/snapshots.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { VmSnapshotService } from '../../services/vms/vm-snapshots.js';
import { serve, type Api } from '../route.js';
import { acceptTask } from '../task-reply.js';

export interface SnapshotRouteServices {
  inventory: InventoryService;
  snapshots: VmSnapshotService;
}

export async function snapshotRoutes(
  app: Api,
  { inventory, snapshots }: SnapshotRouteServices,
): Promise<void> {
  const vmId = (idOrName: string) => inventory.resolve('vm', idOrName).id;
  const onVm = [{ param: 'id', kind: 'vm' }] as const;

  serve(app, listSnapshots, { scope: [...onVm] }, async (request) => ({
    items: await snapshots.list(vmId(request.params.id)),
  }));
  serve(app, createSnapshot, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      snapshots.create(vmId(request.params.id), request.body.name, actor, requestId),
    ),
  );
  serve(app, revertSnapshot, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      snapshots.revert(vmId(request.params.id), request.params.snapshot, actor, requestId),
    ),
  );
  serve(app, deleteSnapshot, { audit: false, scope: [...onVm] }, async (request, reply) =>
    acceptTask(request, reply, (actor, requestId) =>
      snapshots.remove(vmId(request.params.id), request.params.snapshot, actor, requestId),
    ),
  );
}
