/** Connections to hypervisors and managers, and the driver families the server can connect to. */
import { Type, type Static } from 'typebox';
import { IdParams, Items, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';

export const ConnectionView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: Type.String(),
  simulated: Type.Boolean(),
  settings: Type.Record(Type.String(), Type.Unknown()),
  identityId: Type.String(),
  state: StringEnum(['connecting', 'connected', 'disconnected']),
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastSyncAt: NullableInstant,
  capabilities: Type.Array(Type.String()),
  createdAt: Type.Number(),
});
export type ConnectionView = Static<typeof ConnectionView>;

const ConnectionInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    type: Type.String({ minLength: 1, maxLength: 32 }),
    settings: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { maxProperties: 64 })),
    secret: Type.Optional(Type.Union([Type.String({ maxLength: 65536 }), Type.Null()])),
  },
  { additionalProperties: false },
);

/** A connection's failures to reach its peer: refused, unreachable, bad credentials, too slow. */
const peerErrors = [502, 504] as const;

export const listConnections = operation({
  method: 'GET',
  path: '/connections',
  auth: 'connection.read',
  tag: 'connections',
  summary: 'Connections to hypervisors and managers',
  success: { 200: Items(ConnectionView) },
});

export const listConnectionTypes = operation({
  method: 'GET',
  path: '/connection-types',
  auth: 'connection.read',
  tag: 'connections',
  summary: 'The driver families this server can connect to',
  success: {
    200: Items(
      Type.Object({ type: Type.String(), description: Type.String(), simulated: Type.Boolean() }),
    ),
  },
});

export const getConnection = operation({
  method: 'GET',
  path: '/connections/:id',
  auth: 'connection.read',
  tag: 'connections',
  summary: 'One connection by id or name',
  params: IdParams,
  success: { 200: ConnectionView },
});

export const addConnection = operation({
  method: 'POST',
  path: '/connections',
  auth: 'connection.manage',
  tag: 'connections',
  summary: 'Add a connection; answers once it has synced once (or failed)',
  body: ConnectionInput,
  success: { 201: ConnectionView },
  errors: [409, ...peerErrors],
});

export const testConnection = operation({
  method: 'POST',
  path: '/connections/test',
  auth: 'connection.manage',
  tag: 'connections',
  summary: 'Try settings without saving: connect and discover once',
  body: Type.Omit(ConnectionInput, ['name']),
  success: {
    200: Type.Object({
      ok: Type.Literal(true),
      /** How many objects of each kind it found. */
      objects: Type.Record(Type.String(), Type.Number()),
      durationMs: Type.Number(),
      /** The connection that reaches this hypervisor already (adding these settings would be refused). */
      connectedAs: Type.Union([
        Type.Object({ id: Type.String(), name: Type.String() }),
        Type.Null(),
      ]),
    }),
  },
  errors: [...peerErrors],
});

export const refreshConnection = operation({
  method: 'POST',
  path: '/connections/:id/refresh',
  auth: 'connection.manage',
  tag: 'connections',
  summary: 'Re-read the whole inventory now',
  params: IdParams,
  success: { 200: ConnectionView },
  errors: [409, ...peerErrors],
});

export const removeConnection = operation({
  method: 'DELETE',
  path: '/connections/:id',
  auth: 'connection.manage',
  tag: 'connections',
  summary: 'Remove a connection; its objects stay, marked missing',
  params: IdParams,
  success: { 200: ConnectionView },
});
