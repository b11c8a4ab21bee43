/**
 * What a VM's connection can do, so that a client (the web console) offers only the actions its
 * driver supports. The server still checks each action; this only saves a refused click.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { Capability } from '../../hypervisors/driver.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { IdParams } from '../schemas.js';

export async function vmCapabilityRoutes(
  root: FastifyInstance,
  plane: ControlPlane,
): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/vms/:id/capabilities',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['vm actions'],
        summary:
          "What the VM's connection can do (its driver's capabilities: vm.start, vm.clone, vm.rename, ...); 409 ZEN_CONNECTION_DISCONNECTED while it is not connected",
        params: IdParams,
        response: {
          200: Type.Object({
            vmId: Type.String(),
            connectionType: Type.String(),
            simulated: Type.Boolean(),
            capabilities: Type.Array(Type.String()),
          }),
        },
      },
    },
    async (request) => {
      const vm = plane.inventory.resolve('vm', request.params.id);
      if (!vm.connectionId)
        throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} belongs to no connection`);
      const driver = plane.connections.driver(vm.connectionId);
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
        capabilities: driver.info.capabilities.filter(present),
      };
    },
  );
}
