import {
  addConnection,
  getConnection,
  listConnections,
  listConnectionTypes,
  refreshConnection,
  removeConnection,
  testConnection,
} from '../../api/connections.js';
import type { DriverRegistry } from '../../hypervisors/registry.js';
import type { ConnectionService } from '../../services/connections/connection-service.js';
import { serve, type Api } from '../route.js';

export interface ConnectionRouteServices {
  connections: ConnectionService;
  registry: DriverRegistry;
}

export async function connectionRoutes(
  app: Api,
  { connections, registry }: ConnectionRouteServices,
): Promise<void> {
  serve(app, listConnections, {}, async () => ({ items: await connections.list() }));
  serve(app, listConnectionTypes, {}, async () => ({
    items: registry
      .list()
      .map((f) => ({ type: f.type, description: f.description, simulated: f.simulated })),
  }));
  serve(app, getConnection, {}, async (request) => connections.get(request.params.id));
  serve(app, addConnection, { audit: 'connection.add' }, async (request, reply) =>
    reply
      .status(201)
      .send(await connections.add({ ...request.body, settings: request.body.settings ?? {} })),
  );
  serve(app, testConnection, { audit: 'connection.test' }, async (request) =>
    connections.test({ ...request.body, settings: request.body.settings ?? {} }),
  );
  serve(app, refreshConnection, { audit: 'connection.refresh' }, async (request) =>
    connections.refresh(request.params.id),
  );
  serve(app, removeConnection, { audit: 'connection.remove' }, async (request) =>
    connections.remove(request.params.id),
  );
}
