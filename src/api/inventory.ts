/**
 * The inventory: managed objects of every kind (lists filtered by facts and tags, one object by id
 * or name), user facts and tags, resource groups Zenith owns and their members, and where a VM
 * runs or ran.
 */
import { Type, type Static } from 'typebox';
import {
  FactValue,
  FactsInput,
  IdOrName,
  IdParams,
  Items,
  ListQuery,
  NullableInstant,
  Page,
  StringEnum,
  Tags,
} from './common.js';
import { operation } from './operation.js';

export const ManagedObjectView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  parentId: Type.Union([Type.String(), Type.Null()]),
  connectionId: Type.Union([Type.String(), Type.Null()]),
  externalId: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  /** Discovered from the hypervisor: read-only for users. */
  facts: Type.Record(Type.String(), FactValue),
  /** Written by users, always under user.* */
  userFacts: Type.Record(Type.String(), FactValue),
  /** Derived by Zenith (location.*, vms.*): read-only. */
  computed: Type.Record(Type.String(), FactValue),
  status: StringEnum(['present', 'missing']),
  missingSince: NullableInstant,
  /** The object comes from a simulated hypervisor (labelled as such wherever it is shown). */
  simulated: Type.Boolean(),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
});
export type ManagedObjectView = Static<typeof ManagedObjectView>;

export const LocationView = Type.Object({
  vmId: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  hostName: Type.Union([Type.String(), Type.Null()]),
  powerState: Type.String(),
  from: Type.Number(),
  to: NullableInstant,
  /** Why it came there, when Zenith moved it for a reason: failover (high availability). */
  reason: Type.Optional(Type.String()),
});
export type LocationView = Static<typeof LocationView>;

/** The lists and single objects of one kind: GET /{path} and GET /{path}/{idOrName}. */
function kindOperations(path: string, kind: string, plural: string) {
  return {
    list: operation({
      method: 'GET',
      path: `/${path}`,
      auth: 'inventory.read',
      tag: 'inventory',
      summary: `List ${plural}, filtered by facts and tags, cursor-paginated`,
      query: ListQuery,
      success: { 200: Page(ManagedObjectView) },
    }),
    get: operation({
      method: 'GET',
      path: `/${path}/:id`,
      auth: 'inventory.read',
      tag: 'inventory',
      summary: `One ${kind} by id or name`,
      params: IdParams,
      success: { 200: ManagedObjectView },
    }),
  };
}

const hosts = kindOperations('hosts', 'host', 'hosts');
const vms = kindOperations('vms', 'vm', 'vms');
const datacenters = kindOperations('datacenters', 'datacenter', 'datacenters');
const clusters = kindOperations('clusters', 'cluster', 'clusters');
const networks = kindOperations('networks', 'network', 'networks');
const datastores = kindOperations('datastores', 'datastore', 'datastores');
const resourceGroups = kindOperations('resource-groups', 'resourceGroup', 'resource-groups');

export const listHosts = hosts.list;
export const getHost = hosts.get;
export const listVms = vms.list;
export const getVm = vms.get;
export const listDatacenters = datacenters.list;
export const getDatacenter = datacenters.get;
export const listClusters = clusters.list;
export const getCluster = clusters.get;
export const listNetworks = networks.list;
export const getNetwork = networks.get;
export const listDatastores = datastores.list;
export const getDatastore = datastores.get;
export const listResourceGroups = resourceGroups.list;
export const getResourceGroup = resourceGroups.get;

export const listObjects = operation({
  method: 'GET',
  path: '/objects',
  auth: 'inventory.read',
  tag: 'inventory',
  summary: 'Every managed object, any kind',
  query: ListQuery,
  success: { 200: Page(ManagedObjectView) },
});

export const getObject = operation({
  method: 'GET',
  path: '/objects/:id',
  auth: 'inventory.read',
  tag: 'inventory',
  summary: 'One object of any kind, by id or name (a name several objects share needs the id)',
  params: IdParams,
  success: { 200: ManagedObjectView },
});

export const listChildren = operation({
  method: 'GET',
  path: '/objects/:id/children',
  auth: 'inventory.read',
  tag: 'inventory',
  summary: 'Direct children (datacenter → cluster → host → vm)',
  params: IdParams,
  success: { 200: Items(ManagedObjectView) },
});

export const updateObject = operation({
  method: 'PATCH',
  path: '/objects/:id',
  auth: 'inventory.write',
  tag: 'inventory',
  summary: 'Write user facts (user.* keys; null deletes) and add or remove tags',
  params: IdParams,
  body: Type.Object(
    {
      facts: Type.Optional(FactsInput),
      addTags: Type.Optional(Tags),
      removeTags: Type.Optional(Tags),
    },
    { additionalProperties: false },
  ),
  success: { 200: ManagedObjectView },
  errors: [403, 409],
});

export const createResourceGroup = operation({
  method: 'POST',
  path: '/resource-groups',
  auth: 'inventory.write',
  tag: 'inventory',
  summary: 'Create a resource group (an object Zenith owns, for grouping, quotas and access later)',
  body: Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 128 }),
      parentId: Type.Optional(IdOrName),
      tags: Type.Optional(Tags),
      facts: Type.Optional(FactsInput),
    },
    { additionalProperties: false },
  ),
  success: { 201: ManagedObjectView },
  errors: [404, 409],
});

export const deleteResourceGroup = operation({
  method: 'DELETE',
  path: '/resource-groups/:id',
  auth: 'identity.manage',
  tag: 'inventory',
  summary: 'Delete a resource group (without children); what bindings on it reached goes with it',
  params: IdParams,
  success: { 200: ManagedObjectView },
  errors: [409],
});

export const addResourceGroupMember = operation({
  method: 'POST',
  path: '/resource-groups/:id/members',
  auth: 'identity.manage',
  tag: 'inventory',
  summary:
    'List an object (VM, host, cluster, …) as a member of the resource group; bindings on the group then reach it',
  params: Type.Object({ id: IdOrName }),
  body: Type.Object({ object: IdOrName }, { additionalProperties: false }),
  success: { 200: ManagedObjectView },
  errors: [403, 409],
});

export const removeResourceGroupMember = operation({
  method: 'DELETE',
  path: '/resource-groups/:id/members/:member',
  auth: 'identity.manage',
  tag: 'inventory',
  summary: 'Take an object off the resource group’s member list',
  params: Type.Object({ id: IdOrName, member: IdOrName }),
  success: { 200: ManagedObjectView },
  errors: [403],
});

export const vmLocation = operation({
  method: 'GET',
  path: '/vms/:id/location',
  auth: 'inventory.read',
  tag: 'inventory',
  summary: 'Where the VM runs now, or where it was at time `at` (ms since the epoch or ISO 8601)',
  params: IdParams,
  query: Type.Object(
    { at: Type.Optional(Type.String({ maxLength: 64 })) },
    { additionalProperties: false },
  ),
  success: { 200: LocationView },
});

export const vmLocationHistory = operation({
  method: 'GET',
  path: '/vms/:id/location-history',
  auth: 'inventory.read',
  tag: 'inventory',
  summary: 'Every interval the VM spent on a host in one power state, newest first',
  params: IdParams,
  query: Type.Object(
    {
      from: Type.Optional(Type.Integer({ minimum: 0 })),
      to: Type.Optional(Type.Integer({ minimum: 0 })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
    },
    { additionalProperties: false },
  ),
  success: { 200: Items(LocationView) },
});
