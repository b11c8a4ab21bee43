/**
 * GET /events/stream: Server-Sent Events, for as long as the caller's credential holds. What it
 * sends is EventBus.follow's: the missed events, then live ones, at the pace the client reads. The
 * stream registers as a live session (services/identity/live-sessions.ts): a revoked token, a
 * disabled or removed identity, or a session ended by a new password closes it at once with a
 * `stream.closed` event carrying the code; a change of bindings, groups, roles or the identity's
 * own role makes it decide again which events it may deliver, and closes it (ZEN_FORBIDDEN) when
 * the caller may read events nowhere any more.
 */
import { once } from 'node:events';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { streamClosedEvent } from '../api/event-guards.js';
import type { StreamClosedData, ZenithEvent } from '../api/events.js';
import { ZenithError } from '../core/errors.js';
import type { EventBus } from '../services/events/event-bus.js';
import type { AccessService } from '../services/identity/access-service.js';
import type { SessionEnd } from '../services/identity/live-sessions.js';
import type { SessionService } from '../services/identity/session-service.js';
import type { Principal } from '../services/identity/roles.js';
import { principalOf } from './auth.js';

export interface StreamQuery {
  since?: number | undefined;
  type?: string | undefined;
  objectId?: string | undefined;
}

export interface EventStreamServices {
  events: EventBus;
  access: AccessService;
  sessions: SessionService;
}

/** Events about objects the caller may read; events about no object need event.read everywhere. */
export function readableEvents(
  access: AccessService,
  principal: Principal,
): (event: ZenithEvent) => boolean {
  const onObject = access.filter(principal, 'event.read');
  const everywhere = access.decide(principal, 'event.read', null).allowed;
  return (event) => (event.objectId ? onObject(event.objectId) : everywhere);
}

const noLongerPermitted = (principal: Principal): SessionEnd => ({
  code: 'ZEN_FORBIDDEN',
  message: `${principal.name} may no longer read events`,
});

export async function streamEvents(
  { events, access, sessions }: EventStreamServices,
  request: FastifyRequest,
  reply: FastifyReply,
  q: StreamQuery,
): Promise<void> {
  const header = request.headers['last-event-id'];
  const resumeFrom = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : q.since;
  let principal = principalOf(request);
  let readable = readableEvents(access, principal);

  // Registered before the credential is checked again and before anything is sent: a revocation
  // from the request's authentication on reaches this stream, one way or the other.
  let early: SessionEnd | undefined;
  let close: (reason: SessionEnd) => void = (reason) => {
    early ??= reason;
  };
  const release = sessions.live.open({
    identityId: principal.id,
    tokenId: principal.tokenId,
    end: (reason) => close(reason),
    accessChanged: (role) => {
      if (role) principal = { ...principal, role };
      if (!access.holdsAnywhere(principal, 'event.read')) {
        release();
        close(noLongerPermitted(principal));
        return;
      }
      readable = readableEvents(access, principal);
    },
  });
  const ending = early ?? (await sessions.tokenEnding(principal.tokenId)) ?? early;
  if (ending) {
    release();
    throw new ZenithError(ending.code, ending.message);
  }

  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  out.write(': zenith event stream\n\n');
  const following = new AbortController();
  const finish = (reason?: SessionEnd) => {
    if (following.signal.aborted) return;
    following.abort();
    release();
    if (reason && !out.writableEnded) {
      const body: StreamClosedData = {
        error: { code: reason.code, message: reason.message, details: {} },
      };
      out.end(`event: ${streamClosedEvent}\ndata: ${JSON.stringify(body)}\n\n`);
    }
  };
  close = finish;
  request.raw.on('close', () => finish());
  // The client went away during the awaits above: its close has been and gone.
  if (out.destroyed || request.raw.socket.destroyed) return finish();
  if (early) return finish(early);
  // The filter asks `readable` as it is now: access changes replace it (accessChanged above).
  const filter = {
    type: q.type,
    objectId: q.objectId,
    visible: (event: ZenithEvent) => readable(event),
  };
  try {
    for await (const followed of events.follow(resumeFrom, filter, following.signal)) {
      // Ended (or the client gone) while the next one was read: nothing more is written.
      if (following.signal.aborted || out.writableEnded) break;
      const text =
        followed.kind === 'idle'
          ? ': keep-alive\n\n'
          : `id: ${followed.event.seq}\nevent: ${followed.event.type}\ndata: ${JSON.stringify(followed.event)}\n\n`;
      // The client reads at its pace: the next event is taken once this one is on its way.
      if (!out.write(text)) await once(out, 'drain', { signal: following.signal });
    }
  } catch (error) {
    // Ending the stream aborts a wait for the client to drain; anything else is a failure.
    if (!following.signal.aborted) {
      request.log.error({ err: error }, 'the event stream failed');
      finish();
      out.destroy();
    }
  }
}
