import {
  createResourceGroup,
  deleteResourceGroup,
  getCluster,
  getDatacenter,
  getDatastore,
  getHost,
  getNetwork,
  getObject,
  getResourceGroup,
  getVm,
  listChildren,
  listClusters,
  listDatacenters,
  listDatastores,
  listHosts,
  listNetworks,
  listObjects,
  listResourceGroups,
  listVms,
  updateObject,
  vmLocation,
  vmLocationHistory,
  type ManagedObjectView,
} from '../../api/inventory.js';
import type { ListQuery } from '../../api/common.js';
import { vmMetrics } from '../../api/metrics.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { ObjectKind } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../../services/connections/connection-service.js';
import type { AccessDataGuard } from '../../services/identity/access-data-guard.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { Principal } from '../../services/identity/roles.js';
import { parseFilter } from '../../services/inventory/filter.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { LocationInterval, ManagedObject } from '../../services/inventory/model.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export function objectView(object: ManagedObject): ManagedObjectView {
  return { ...object, simulated: object.facts['hypervisor.type'] === 'simulated' };
}

/** The lists and single objects of each kind. */
const kinds = [
  { kind: 'host', list: listHosts, get: getHost },
  { kind: 'vm', list: listVms, get: getVm },
  { kind: 'datacenter', list: listDatacenters, get: getDatacenter },
  { kind: 'cluster', list: listClusters, get: getCluster },
  { kind: 'network', list: listNetworks, get: getNetwork },
  { kind: 'datastore', list: listDatastores, get: getDatastore },
  { kind: 'resourceGroup', list: listResourceGroups, get: getResourceGroup },
] as const satisfies ReadonlyArray<{ kind: ObjectKind; list: unknown; get: unknown }>;

export interface InventoryRouteServices {
  inventory: InventoryService;
  access: AccessService;
  accessData: AccessDataGuard;
  connections: ConnectionService;
  clock: Clock;
}

export async function inventoryRoutes(
  app: Api,
  { inventory, access, accessData, connections, clock }: InventoryRouteServices,
): Promise<void> {
  // Lists hold only what the caller may read.
  const list = (kind: ObjectKind | undefined, query: ListQuery, principal: Principal) => {
    const filters = (query.filter ?? []).map(parseFilter);
    const readable = access.filter(principal, 'inventory.read');
    const page = inventory.index.query({
      kind,
      filters,
      tags: query.tag ?? [],
      sort: query.sort,
      cursor: query.cursor,
      limit: query.limit ?? 100,
      visible: (object) => readable(object.id),
    });
    return { items: page.items.map(objectView), nextCursor: page.nextCursor };
  };
  const lookup = (kind: ObjectKind | undefined, id: string) => {
    // By id or name, as the route's scope check already resolved it.
    const object = kind ? inventory.resolve(kind, id) : inventory.lookup(id);
    return objectView(object);
  };

  for (const { kind, list: listKind, get: getKind } of kinds) {
    serve(app, listKind, { scope: 'filtered' }, async (request) =>
      list(kind, request.query, principalOf(request)),
    );
    serve(app, getKind, { scope: [{ param: 'id', kind }] }, async (request) =>
      lookup(kind, request.params.id),
    );
  }

  serve(app, listObjects, { scope: 'filtered' }, async (request) =>
    list(undefined, request.query, principalOf(request)),
  );
  serve(app, getObject, { scope: [{ param: 'id', kind: 'any' }] }, async (request) =>
    lookup(undefined, request.params.id),
  );
  serve(app, listChildren, { scope: [{ param: 'id', kind: 'any' }] }, async (request) => {
    const readable = access.filter(principalOf(request), 'inventory.read');
    return {
      items: inventory.index
        .children(inventory.lookup(request.params.id).id)
        .filter((child) => readable(child.id))
        .map(objectView),
    };
  });

  serve(
    app,
    updateObject,
    { audit: 'object.update', scope: [{ param: 'id', kind: 'any' }] },
    async (request) => {
      const body = request.body;
      const target = inventory.lookup(request.params.id);
      // Selectors, member lists and the facts conditions read decide who may act where.
      accessData.checkEdit(principalOf(request), target, {
        ...(body.facts ? { facts: body.facts } : {}),
        ...(body.addTags ? { addTags: body.addTags } : {}),
        ...(body.removeTags ? { removeTags: body.removeTags } : {}),
      });
      const updated = await inventory.setUserFacts(target.id, body.facts ?? {}, {
        ...(body.addTags ? { add: body.addTags } : {}),
        ...(body.removeTags ? { remove: body.removeTags } : {}),
      });
      return objectView(updated);
    },
  );

  serve(
    app,
    createResourceGroup,
    { audit: 'resourceGroup.create', scope: [{ body: 'parentId', kind: 'any' }] },
    async (request, reply) => {
      const body = request.body;
      const parentId = body.parentId === undefined ? null : inventory.lookup(body.parentId).id;
      accessData.checkNew(principalOf(request), parentId, 'resourceGroup', {
        ...(body.facts ? { facts: body.facts } : {}),
        ...(body.tags ? { addTags: body.tags } : {}),
      });
      const created = await inventory.createLocal({
        kind: 'resourceGroup',
        name: body.name,
        parentId,
        tags: body.tags ?? [],
        facts: body.facts ?? {},
      });
      return reply.status(201).send(objectView(created));
    },
  );
  serve(
    app,
    deleteResourceGroup,
    // What bindings on the group reach goes with it: an access change.
    { audit: 'resourceGroup.delete', scope: [{ param: 'id', kind: 'resourceGroup' }] },
    async (request) =>
      objectView(
        await inventory.deleteLocal(inventory.resolve('resourceGroup', request.params.id).id),
      ),
  );

  const locationView = (interval: LocationInterval) => ({
    ...interval,
    hostName: interval.hostId ? (inventory.index.get(interval.hostId)?.name ?? null) : null,
  });

  serve(app, vmLocation, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    const raw = request.query.at;
    const at = raw === undefined ? clock.now() : /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
    if (!Number.isFinite(at) || Math.abs(at) > 8.64e15)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `'${raw}' is not a time: use milliseconds since the epoch or ISO 8601`,
        { at: raw },
      );
    const interval = await inventory.locations.at(vm.id, at);
    if (!interval)
      throw new ZenithError(
        'ZEN_NOT_FOUND',
        `Zenith did not know where ${vm.name} was at ${new Date(at).toISOString()}`,
        { at },
      );
    return locationView(interval);
  });
  serve(app, vmLocationHistory, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    const q = request.query;
    const items = await inventory.locations.history(vm.id, {
      ...(q.from !== undefined ? { from: q.from } : {}),
      ...(q.to !== undefined ? { to: q.to } : {}),
      limit: q.limit ?? 1000,
    });
    return { items: items.map(locationView) };
  });
  serve(app, vmMetrics, { scope: [{ param: 'id', kind: 'vm' }] }, async (request) => {
    const vm = inventory.resolve('vm', request.params.id);
    if (!vm.connectionId || !vm.externalId || vm.status !== 'present')
      throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing: it has no metrics`);
    const driver = connections.driver(vm.connectionId);
    if (!driver.vmMetrics)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${driver.info.type} connections do not report VM metrics`,
        { type: driver.info.type },
      );
    return { vmId: vm.id, metrics: await driver.vmMetrics(vm.externalId) };
  });
}
