/**
 * What a VM's connection can do, so that a client (the web console) offers only the actions its
 * driver supports. The server still checks each action; this only saves a refused click.
 */
import { vmCapabilities } from '../../api/vms.js';
import { ZenithError } from '../../core/errors.js';
import { facetOf, type Capability } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../../services/connections/connection-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { serve, type Api } from '../route.js';

export interface VmCapabilityRouteServices {
  inventory: InventoryService;
  connections: ConnectionService;
}

export async function vmCapabilityRoutes(
  app: Api,
  { inventory, connections }: VmCapabilityRouteServices,
): Promise<void> {
  serve(app, vmCapabilities, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    if (!vm.connectionId)
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} belongs to no connection`);
    const driver = connections.driver(vm.connectionId);
    // A capability counts only with the method behind it (rename and reconfigure are optional).
    const present = (capability: Capability) =>
      capability === 'vm.rename'
        ? driver.renameVm !== undefined
        : capability === 'vm.reconfigure'
          ? driver.reconfigureVm !== undefined
          : true;
    return {
      vmId: vm.id,
      connectionType: driver.info.type,
      simulated: driver.info.simulated,
      capabilities: [
        ...driver.info.capabilities.filter(present),
        // Backed up where its disks can be read as streams (the disk-stream facet).
        ...(facetOf(driver, 'diskStreams') ? ['vm.backup'] : []),
      ],
    };
  });
}
