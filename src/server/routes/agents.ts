import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { heartbeatIntervalMs } from '../../services/agents/agent-service.js';
import { isZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../services/control-plane.js';
import { actorOf, principalOf } from '../auth.js';
import { IdParams } from '../schemas.js';

const AgentView = Type.Object({
  id: Type.String(),
  identityId: Type.String(),
  hostname: Type.String(),
  facts: Type.Record(Type.String(), Type.Unknown()),
  address: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: Type.Number(),
  lastSeenAt: Type.Union([Type.Number(), Type.Null()]),
  state: Type.String(),
});

export async function agentRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/agents/enrollment-tokens',
    {
      config: { permission: 'agent.manage', audit: 'agent.enrollmentToken' },
      schema: {
        tags: ['agents'],
        summary: 'A one-time token for enrolling one host agent (shown once)',
        body: Type.Object(
          { ttlMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10080, default: 60 })) },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({ id: Type.String(), token: Type.String(), expiresAt: Type.Number() }),
        },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(
          await plane.agents.createEnrollmentToken(
            actorOf(principalOf(request)),
            (request.body.ttlMinutes ?? 60) * 60_000,
          ),
        ),
  );
  app.post(
    '/agents/enroll',
    {
      // Reachable without a session: the one-time token in the body is the credential.
      config: { public: true, audit: 'agent.enroll' },
      schema: {
        security: [],
        tags: ['agents'],
        summary: 'An agent trades its one-time token for credentials of its own',
        body: Type.Object(
          {
            enrollmentToken: Type.String({ minLength: 10, maxLength: 200 }),
            hostname: Type.String({ minLength: 1, maxLength: 253 }),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            agent: AgentView,
            token: Type.String(),
            heartbeatIntervalMs: Type.Number(),
          }),
        },
      },
    },
    async (request, reply) => {
      const keys = [`addr:${request.ip}`];
      plane.identities.limiter.check(keys);
      try {
        const enrolled = await plane.agents.enroll(
          request.body.enrollmentToken,
          request.body.hostname,
          request.ip,
        );
        return reply.status(201).send({ ...enrolled, heartbeatIntervalMs });
      } catch (error) {
        plane.identities.limiter.fail(keys);
        throw error;
      }
    },
  );
  app.post(
    '/agents/heartbeat',
    {
      config: { permission: 'agent.report', audit: false },
      schema: {
        tags: ['agents'],
        summary: 'An agent reports its host facts (agent credentials only)',
        body: Type.Object(
          {
            facts: Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
              maxProperties: 256,
            }),
          },
          { additionalProperties: false },
        ),
        response: { 200: AgentView },
      },
    },
    async (request) => plane.agents.heartbeat(principalOf(request), request.body.facts),
  );
  app.get(
    '/agents',
    {
      config: { permission: 'connection.read' },
      schema: {
        tags: ['agents'],
        summary: 'Enrolled agents and whether they are connected',
        response: { 200: Type.Object({ items: Type.Array(AgentView) }) },
      },
    },
    async () => ({
      items: await plane.agents.list(),
    }),
  );
  app.delete(
    '/agents/:id',
    {
      config: { permission: 'agent.manage', audit: 'agent.revoke' },
      schema: {
        tags: ['agents'],
        summary: 'Revoke an agent: its credentials stop working at once',
        params: IdParams,
        response: { 200: AgentView },
      },
    },
    async (request) => {
      const agent = await plane.agents.revoke(request.params.id);
      // Cut off at once, not at its next request.
      plane.agentHub.disconnect(agent.id, 'ZEN_FORBIDDEN: this agent was revoked');
      return agent;
    },
  );
  app.get(
    '/agents/channel',
    {
      websocket: true,
      config: { permission: 'agent.report' },
      schema: { hide: true },
    },
    async (socket, request) => {
      const principal = principalOf(request);
      try {
        const agent = await plane.agents.byIdentity(principal.id);
        plane.agentHub.attach(agent.id, socket, (facts) => {
          plane.agents
            .heartbeat(principal, facts)
            .catch((error: unknown) => request.log.warn({ err: error }, 'heartbeat failed'));
        });
        await plane.agents.heartbeat(principal, {});
      } catch (error) {
        socket.close(
          4403,
          isZenithError(error) ? `${error.code}: ${error.message}`.slice(0, 120) : 'refused',
        );
      }
    },
  );
}
