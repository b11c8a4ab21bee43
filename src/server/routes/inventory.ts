import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { ObjectKind } from '../../hypervisors/driver.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { parseFilter } from '../../services/inventory/filter.js';
import type { Principal } from '../../services/identity/roles.js';
import { principalOf } from '../auth.js';
import type { LocationInterval, ManagedObject } from '../../services/inventory/model.js';
import {
  FactValueInput,
  IdParams,
  ListQuery,
  LocationView,
  ManagedObjectView,
  Page,
} from '../schemas.js';

export function objectView(object: ManagedObject) {
  return { ...object, simulated: object.facts['hypervisor.type'] === 'simulated' };
}

const kindsByPath: Record<string, ObjectKind> = {
  hosts: 'host',
  vms: 'vm',
  datacenters: 'datacenter',
  clusters: 'cluster',
  networks: 'network',
  datastores: 'datastore',
  'resource-groups': 'resourceGroup',
};

export async function inventoryRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { inventory } = plane;

  // Lists hold only what the caller may read.
  const list = (kind: ObjectKind | undefined, query: ListQuery, principal: Principal) => {
    const filters = (query.filter ?? []).map(parseFilter);
    const readable = plane.access.filter(principal, 'inventory.read');
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

  for (const [path, kind] of Object.entries(kindsByPath)) {
    app.get(
      `/${path}`,
      {
        config: { permission: 'inventory.read', scope: 'filtered' },
        schema: {
          tags: ['inventory'],
          summary: `List ${path}, filtered by facts and tags, cursor-paginated`,
          querystring: ListQuery,
          response: { 200: Page(ManagedObjectView) },
        },
      },
      async (request) => list(kind, request.query, principalOf(request)),
    );
    app.get(
      `/${path}/:id`,
      {
        config: { permission: 'inventory.read', scope: [{ param: 'id', kind }] },
        schema: {
          tags: ['inventory'],
          summary: `One ${kind} by id or name`,
          params: IdParams,
          response: { 200: ManagedObjectView },
        },
      },
      async (request) => lookup(kind, request.params.id),
    );
  }

  app.get(
    '/objects',
    {
      config: { permission: 'inventory.read', scope: 'filtered' },
      schema: {
        tags: ['inventory'],
        summary: 'Every managed object, any kind',
        querystring: ListQuery,
        response: { 200: Page(ManagedObjectView) },
      },
    },
    async (request) => list(undefined, request.query, principalOf(request)),
  );
  app.get(
    '/objects/:id',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'any' }] },
      schema: {
        tags: ['inventory'],
        summary:
          'One object of any kind, by id or name (a name several objects share needs the id)',
        params: IdParams,
        response: { 200: ManagedObjectView },
      },
    },
    async (request) => lookup(undefined, request.params.id),
  );
  app.get(
    '/objects/:id/children',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'any' }] },
      schema: {
        tags: ['inventory'],
        summary: 'Direct children (datacenter → cluster → host → vm)',
        params: IdParams,
      },
    },
    async (request) => {
      const readable = plane.access.filter(principalOf(request), 'inventory.read');
      return {
        items: inventory.index
          .children(inventory.lookup(request.params.id).id)
          .filter((child) => readable(child.id))
          .map(objectView),
      };
    },
  );

  app.patch(
    '/objects/:id',
    {
      config: {
        permission: 'inventory.write',
        audit: 'object.update',
        scope: [{ param: 'id', kind: 'any' }],
      },
      schema: {
        tags: ['inventory'],
        summary: 'Write user facts (user.* keys; null deletes) and add or remove tags',
        params: IdParams,
        body: Type.Object(
          {
            facts: Type.Optional(
              Type.Record(Type.String({ maxLength: 128 }), FactValueInput, { maxProperties: 64 }),
            ),
            addTags: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
            removeTags: Type.Optional(
              Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: ManagedObjectView },
      },
    },
    async (request) => {
      const body = request.body;
      const target = inventory.lookup(request.params.id);
      // Selectors, member lists and the facts conditions read decide who may act where.
      plane.accessData.checkEdit(principalOf(request), target, {
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

  app.post(
    '/resource-groups',
    {
      config: {
        permission: 'inventory.write',
        audit: 'resourceGroup.create',
        scope: [{ body: 'parentId', kind: 'any' }],
      },
      schema: {
        tags: ['inventory'],
        summary:
          'Create a resource group (an object Zenith owns, for grouping, quotas and access later)',
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 128 }),
            parentId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            tags: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
            facts: Type.Optional(
              Type.Record(Type.String({ maxLength: 128 }), FactValueInput, { maxProperties: 64 }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: ManagedObjectView },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const parentId = body.parentId ? inventory.lookup(body.parentId).id : null;
      plane.accessData.checkNew(principalOf(request), parentId, 'resourceGroup', {
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
  app.delete(
    '/resource-groups/:id',
    {
      config: {
        // What bindings on the group reach goes with it: an access change.
        permission: 'identity.manage',
        audit: 'resourceGroup.delete',
        scope: [{ param: 'id', kind: 'resourceGroup' }],
      },
      schema: { tags: ['inventory'], params: IdParams, response: { 200: ManagedObjectView } },
    },
    async (request) =>
      objectView(
        await inventory.deleteLocal(inventory.resolve('resourceGroup', request.params.id).id),
      ),
  );

  const locationView = (interval: LocationInterval) => ({
    ...interval,
    hostName: interval.hostId ? (inventory.index.get(interval.hostId)?.name ?? null) : null,
  });

  app.get(
    '/vms/:id/location',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['inventory'],
        summary:
          'Where the VM runs now, or where it was at time `at` (ms since the epoch or ISO 8601)',
        params: IdParams,
        querystring: Type.Object(
          { at: Type.Optional(Type.String({ maxLength: 64 })) },
          { additionalProperties: false },
        ),
        response: { 200: LocationView },
      },
    },
    async (request) => {
      const vm = inventory.resolve('vm', request.params.id);
      const raw = request.query.at;
      const at =
        raw === undefined ? plane.clock.now() : /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
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
    },
  );
  app.get(
    '/vms/:id/location-history',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['inventory'],
        summary: 'Every interval the VM spent on a host in one power state, newest first',
        params: IdParams,
        querystring: Type.Object(
          {
            from: Type.Optional(Type.Integer({ minimum: 0 })),
            to: Type.Optional(Type.Integer({ minimum: 0 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(LocationView) }) },
      },
    },
    async (request) => {
      const vm = inventory.resolve('vm', request.params.id);
      const q = request.query;
      const items = await inventory.locations.history(vm.id, {
        ...(q.from !== undefined ? { from: q.from } : {}),
        ...(q.to !== undefined ? { to: q.to } : {}),
        limit: q.limit ?? 1000,
      });
      return { items: items.map(locationView) };
    },
  );
  app.get(
    '/vms/:id/metrics',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['inventory'],
        summary:
          'Counters of a running VM (CPU time, memory, disk and network bytes), as its host last measured them; null when it is not running',
        params: IdParams,
        response: {
          200: Type.Object({
            vmId: Type.String(),
            metrics: Type.Union([
              Type.Object({
                sampledAt: Type.Number(),
                cpuTimeMs: Type.Number(),
                memoryUsedBytes: Type.Number(),
                memoryConfiguredBytes: Type.Number(),
                diskReadBytes: Type.Number(),
                diskWriteBytes: Type.Number(),
                diskReadOps: Type.Number(),
                diskWriteOps: Type.Number(),
                netRxBytes: Type.Union([Type.Number(), Type.Null()]),
                netTxBytes: Type.Union([Type.Number(), Type.Null()]),
              }),
              Type.Null(),
            ]),
          }),
        },
      },
    },
    async (request) => {
      const vm = inventory.resolve('vm', request.params.id);
      if (!vm.connectionId || !vm.externalId || vm.status !== 'present')
        throw new ZenithError('ZEN_INVALID_STATE', `${vm.name} is missing: it has no metrics`);
      const driver = plane.connections.driver(vm.connectionId);
      if (!driver.vmMetrics)
        throw new ZenithError(
          'ZEN_UNSUPPORTED',
          `${driver.info.type} connections do not report VM metrics`,
          { type: driver.info.type },
        );
      return { vmId: vm.id, metrics: await driver.vmMetrics(vm.externalId) };
    },
  );
}
