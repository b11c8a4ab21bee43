/**
 * GET /events/stream: Server-Sent Events, for as long as the caller's credential holds. The stream
 * registers as a live session (services/identity/live-sessions.ts): a revoked token, a disabled or
 * removed identity, or a session ended by a new password closes it at once with a `stream.closed`
 * event carrying the code; a change of bindings, groups, roles or the identity's own role makes it
 * decide again which events it may deliver, and closes it (ZEN_FORBIDDEN) when the caller may read
 * events nowhere any more.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ZenithError } from '../core/errors.js';
import type { ControlPlane } from '../app/control-plane.js';
import type { ZenithEvent } from '../services/events/event-bus.js';
import type { SessionEnd } from '../services/identity/live-sessions.js';
import type { Principal } from '../services/identity/roles.js';
import { principalOf } from './auth.js';

/** The event a stream's last message has when the server ends it; its data is an error body. */
export const streamClosedEvent = 'stream.closed';

export interface StreamQuery {
  since?: number | undefined;
  type?: string | undefined;
  objectId?: string | undefined;
}

/** Events about objects the caller may read; events about no object need event.read everywhere. */
export function readableEvents(
  plane: ControlPlane,
  principal: Principal,
): (event: ZenithEvent) => boolean {
  const onObject = plane.access.filter(principal, 'event.read');
  const everywhere = plane.access.decide(principal, 'event.read', null).allowed;
  return (event) => (event.objectId ? onObject(event.objectId) : everywhere);
}

const noLongerPermitted = (principal: Principal): SessionEnd => ({
  code: 'ZEN_FORBIDDEN',
  message: `${principal.name} may no longer read events`,
});

export async function streamEvents(
  plane: ControlPlane,
  request: FastifyRequest,
  reply: FastifyReply,
  q: StreamQuery,
): Promise<void> {
  const header = request.headers['last-event-id'];
  const resumeFrom = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : q.since;
  let principal = principalOf(request);
  let readable = readableEvents(plane, principal);
  const wanted = (event: ZenithEvent) =>
    readable(event) &&
    (!q.type || event.type.startsWith(q.type)) &&
    (!q.objectId || event.objectId === q.objectId);

  // Registered before the credential is checked again and before anything is sent: a revocation
  // from the request's authentication on reaches this stream, one way or the other.
  let early: SessionEnd | undefined;
  let close: (reason: SessionEnd) => void = (reason) => {
    early ??= reason;
  };
  const release = plane.sessions.live.open({
    identityId: principal.id,
    tokenId: principal.tokenId,
    end: (reason) => close(reason),
    accessChanged: (role) => {
      if (role) principal = { ...principal, role };
      if (!plane.access.holdsAnywhere(principal, 'event.read')) {
        release();
        close(noLongerPermitted(principal));
        return;
      }
      readable = readableEvents(plane, principal);
    },
  });
  const ending = early ?? (await plane.sessions.tokenEnding(principal.tokenId)) ?? early;
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
  let finished = false;
  let lastSent = resumeFrom ?? (await plane.events.lastSeq());
  const buffered: ZenithEvent[] = [];
  let replaying = resumeFrom !== undefined;
  const send = (event: ZenithEvent) => {
    if (finished || event.seq <= lastSent || !wanted(event)) return;
    lastSent = event.seq;
    out.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  };
  const unsubscribe = plane.events.subscribe((event) =>
    replaying ? buffered.push(event) : send(event),
  );
  const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), 15_000);
  const finish = (reason?: SessionEnd) => {
    if (finished) return;
    finished = true;
    clearInterval(heartbeat);
    unsubscribe();
    release();
    if (reason && !out.writableEnded) {
      const body = { error: { code: reason.code, message: reason.message, details: {} } };
      out.end(`event: ${streamClosedEvent}\ndata: ${JSON.stringify(body)}\n\n`);
    }
  };
  close = finish;
  request.raw.on('close', () => finish());
  // The client went away during the awaits above: its close has been and gone.
  if (out.destroyed || request.raw.socket.destroyed) return finish();
  if (early) return finish(early);
  // Replay what the client missed, page by page, then switch to live delivery.
  while (replaying && !finished) {
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
}
