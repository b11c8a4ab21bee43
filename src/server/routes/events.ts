import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import { principalOf } from '../auth.js';
import { readableEvents, streamClosedEvent, streamEvents } from '../event-stream.js';

const EventsQuery = Type.Object(
  {
    since: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Only events after this sequence number' }),
    ),
    type: Type.Optional(
      Type.String({ maxLength: 64, description: 'Type prefix, e.g. task. or inventory.' }),
    ),
    objectId: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);

export async function eventRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/events',
    {
      config: { permission: 'event.read', scope: 'filtered' },
      schema: {
        tags: ['events'],
        summary: 'Stored events in sequence order: after ?since=, or the latest ones',
        querystring: EventsQuery,
      },
    },
    async (request) => {
      const q = request.query;
      const readable = readableEvents(plane, principalOf(request));
      const page = await plane.events.list({
        afterSeq: q.since,
        limit: q.limit ?? 100,
        ...(q.type ? { typePrefix: q.type } : {}),
        ...(q.objectId ? { objectId: q.objectId } : {}),
      });
      // nextSince follows the unfiltered page, so that paging never stalls on hidden events.
      return {
        items: page.filter(readable),
        nextSince: page.length > 0 ? page[page.length - 1]!.seq : (q.since ?? 0),
      };
    },
  );

  app.get(
    '/events/stream',
    {
      config: { permission: 'event.read', scope: 'filtered' },
      schema: {
        tags: ['events'],
        summary: `Server-Sent Events: inventory changes and task progress, live. Resumes after Last-Event-ID or ?since=. Ends with a ${streamClosedEvent} event (data: an error body with its code) when the credential is revoked or the caller may no longer read events`,
        querystring: Type.Omit(EventsQuery, ['limit']),
      },
    },
    async (request, reply) => streamEvents(plane, request, reply, request.query),
  );
}
