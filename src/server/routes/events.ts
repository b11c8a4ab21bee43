import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../services/control-plane.js';
import type { ZenithEvent } from '../../services/events/event-bus.js';
import type { Principal } from '../../services/identity/roles.js';
import { principalOf } from '../auth.js';

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

/** Events about objects the caller may read; events about no object need event.read everywhere. */
function readableEvents(
  plane: ControlPlane,
  principal: Principal,
): (event: ZenithEvent) => boolean {
  const onObject = plane.access.filter(principal, 'event.read');
  const everywhere = plane.access.decide(principal, 'event.read', null).allowed;
  return (event) => (event.objectId ? onObject(event.objectId) : everywhere);
}

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
        summary:
          'Server-Sent Events: inventory changes and task progress, live. Resumes after Last-Event-ID or ?since=',
        querystring: Type.Omit(EventsQuery, ['limit']),
      },
    },
    async (request, reply) => {
      const q = request.query;
      const header = request.headers['last-event-id'];
      const resumeFrom =
        typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : q.since;
      const readable = readableEvents(plane, principalOf(request));
      const wanted = (event: ZenithEvent) =>
        readable(event) &&
        (!q.type || event.type.startsWith(q.type)) &&
        (!q.objectId || event.objectId === q.objectId);
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      out.write(': zenith event stream\n\n');
      let lastSent = resumeFrom ?? (await plane.events.lastSeq());
      const buffered: ZenithEvent[] = [];
      let replaying = resumeFrom !== undefined;
      const send = (event: ZenithEvent) => {
        if (event.seq <= lastSent || !wanted(event)) return;
        lastSent = event.seq;
        out.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      };
      const unsubscribe = plane.events.subscribe((event) =>
        replaying ? buffered.push(event) : send(event),
      );
      const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), 15_000);
      request.raw.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
      });
      // Replay what the client missed, page by page, then switch to live delivery.
      while (replaying) {
        const page = await plane.events.list({ afterSeq: lastSent, limit: 1000 });
        for (const event of page) {
          if (wanted(event)) send(event);
          else lastSent = event.seq;
        }
        if (page.length < 1000) {
          replaying = false;
          for (const event of buffered.splice(0)) send(event);
        }
      }
    },
  );
}
