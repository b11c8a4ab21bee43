import { getFailover, getHaVm, haStatus, listFailovers, listHaVms } from '../../api/ha.js';
import { ZenithError } from '../../core/errors.js';
import type { HaService } from '../../services/ha/ha-service.js';
import { vsphereHaClusters } from '../../services/ha/vsphere-ha.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface HaRouteServices {
  access: AccessService;
  ha: HaService;
  inventory: InventoryService;
}

/** High availability's state: what each caller may read of hosts, VMs and their failovers. */
export async function haRoutes(
  app: Api,
  { access, ha, inventory }: HaRouteServices,
): Promise<void> {
  const readable = (request: Parameters<typeof principalOf>[0]) => {
    const principal = principalOf(request);
    return (id: string) => access.decide(principal, 'inventory.read', id).allowed;
  };

  serve(app, haStatus, {}, async (request) => {
    const visible = readable(request);
    const vms = await ha.vmStatus(visible);
    const count = (state: string) => vms.filter((vm) => vm.state === state).length;
    return {
      hosts: ha.hostStatus(visible),
      vms: {
        protected: count('protected'),
        unprotected: count('unprotected'),
        restarting: count('restarting'),
        waiting: count('waiting'),
        vsphereHa: count('vsphere-ha'),
        monitoringLimit: count('monitoring-limit'),
      },
      vsphereClusters: vsphereHaClusters(inventory.index, visible),
    };
  });

  serve(app, listHaVms, {}, async (request) => {
    const vms = await ha.vmStatus(readable(request));
    const state = request.query.state;
    return { items: state ? vms.filter((vm) => vm.state === state) : vms };
  });

  serve(app, getHaVm, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    const [status] = await ha.vmStatus((id) => id === vm.id);
    if (!status) throw new ZenithError('ZEN_NOT_FOUND', `no VM '${request.params.id}'`);
    return status;
  });

  serve(app, listFailovers, {}, async (request) => {
    const visible = readable(request);
    const failovers = await ha.store.list(request.query.limit ?? 50);
    return {
      items: await Promise.all(
        failovers.filter((f) => visible(f.hostId)).map((f) => ha.failoverView(f, visible)),
      ),
    };
  });

  serve(app, getFailover, {}, async (request) => {
    const failover = await ha.store.failover(request.params.id);
    const visible = readable(request);
    if (!visible(failover.hostId))
      throw new ZenithError('ZEN_NOT_FOUND', `no failover '${request.params.id}'`);
    return ha.failoverView(failover, visible);
  });
}
