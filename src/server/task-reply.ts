/**
 * Task routes answer 202 with the task a service queued. The service is told who acts (the
 * authenticated principal, as an audit actor) and the request id, which the task and its audit
 * record carry; one helper so that no task route can forget either.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../services/audit/audit-service.js';
import { actorOf, principalOf } from './auth.js';

export async function acceptTask(
  request: FastifyRequest,
  reply: FastifyReply,
  queue: (actor: Actor, requestId: string) => Promise<unknown>,
): Promise<FastifyReply> {
  return reply.status(202).send(await queue(actorOf(principalOf(request)), request.id));
}
