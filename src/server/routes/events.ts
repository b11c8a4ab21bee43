import { followEvents, listEvents } from '../../api/events.js';
import type { EventBus } from '../../services/events/event-bus.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { SessionService } from '../../services/identity/session-service.js';
import { principalOf } from '../auth.js';
import { readableEvents, streamEvents } from '../event-stream.js';
import { serve, type Api } from '../route.js';

export interface EventRouteServices {
  events: EventBus;
  access: AccessService;
  sessions: SessionService;
}

export async function eventRoutes(app: Api, services: EventRouteServices): Promise<void> {
  const { events, access } = services;
  // Stored events are sent as they were stored (events of older versions included).
  serve(app, listEvents, { scope: 'filtered', serialize: 'as-is' }, async (request) => {
    const q = request.query;
    const readable = readableEvents(access, principalOf(request));
    const page = await events.list({
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
  });
  serve(app, followEvents, { scope: 'filtered' }, async (request, reply) =>
    streamEvents(services, request, reply, request.query),
  );
}
