import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import { IdParams } from '../schemas.js';

const ConnectionInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    type: Type.String({ minLength: 1, maxLength: 32 }),
    settings: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { maxProperties: 64 })),
    secret: Type.Optional(Type.Union([Type.String({ maxLength: 65536 }), Type.Null()])),
  },
  { additionalProperties: false },
);

export async function connectionRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { connections } = plane;
  app.get(
    '/connections',
    {
      config: { permission: 'connection.read' },
      schema: { tags: ['connections'], summary: 'Connections to hypervisors and managers' },
    },
    async () => ({ items: await connections.list() }),
  );
  app.get(
    '/connection-types',
    {
      config: { permission: 'connection.read' },
      schema: { tags: ['connections'], summary: 'The driver families this server can connect to' },
    },
    async () => ({
      items: plane.registry
        .list()
        .map((f) => ({ type: f.type, description: f.description, simulated: f.simulated })),
    }),
  );
  app.get(
    '/connections/:id',
    {
      config: { permission: 'connection.read' },
      schema: { tags: ['connections'], params: IdParams },
    },
    async (request) => connections.get(request.params.id),
  );
  app.post(
    '/connections',
    {
      config: { permission: 'connection.manage', audit: 'connection.add' },
      schema: {
        tags: ['connections'],
        summary: 'Add a connection; answers once it has synced once (or failed)',
        body: ConnectionInput,
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await connections.add({ ...request.body, settings: request.body.settings ?? {} })),
  );
  app.post(
    '/connections/test',
    {
      config: { permission: 'connection.manage', audit: 'connection.test' },
      schema: {
        tags: ['connections'],
        summary: 'Try settings without saving: connect and discover once',
        body: Type.Omit(ConnectionInput, ['name']),
      },
    },
    async (request) => connections.test({ ...request.body, settings: request.body.settings ?? {} }),
  );
  app.post(
    '/connections/:id/refresh',
    {
      config: { permission: 'connection.manage', audit: 'connection.refresh' },
      schema: {
        tags: ['connections'],
        summary: 'Re-read the whole inventory now',
        params: IdParams,
      },
    },
    async (request) => connections.refresh(request.params.id),
  );
  app.delete(
    '/connections/:id',
    {
      config: { permission: 'connection.manage', audit: 'connection.remove' },
      schema: {
        tags: ['connections'],
        summary: 'Remove a connection; its objects stay, marked missing',
        params: IdParams,
      },
    },
    async (request) => connections.remove(request.params.id),
  );
}
