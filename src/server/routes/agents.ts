import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import { heartbeatIntervalMs } from '../../services/agents/agent-service.js';
import { newNonce } from '../../services/agents/agent-certificates.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { ChannelHandshake } from '../../hypervisors/agent/agent-link.js';
import type { ControlPlane } from '../../app/control-plane.js';
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

const CertificateView = Type.Object({
  serial: Type.String(),
  certificate: Type.String(),
  notBefore: Type.Number(),
  notAfter: Type.Number(),
});

const CertificateRecord = Type.Object({
  serial: Type.String(),
  agentId: Type.String(),
  notBefore: Type.Number(),
  notAfter: Type.Number(),
  issuedAt: Type.Number(),
  replaces: Type.Union([Type.String(), Type.Null()]),
  revokedAt: Type.Union([Type.Number(), Type.Null()]),
  revokedReason: Type.Union([Type.String(), Type.Null()]),
});

/** How long an agent has to answer the channel's challenge. */
const handshakeTimeoutMs = 10_000;

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
        summary:
          'An agent trades its one-time token and a CSR for a client certificate from Zenith’s CA',
        body: Type.Object(
          {
            enrollmentToken: Type.String({ minLength: 10, maxLength: 200 }),
            hostname: Type.String({ minLength: 1, maxLength: 253 }),
            csr: Type.String({ minLength: 1, maxLength: 8192 }),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            agent: AgentView,
            certificate: CertificateView,
            caCertificate: Type.String(),
            heartbeatIntervalMs: Type.Number(),
          }),
        },
      },
    },
    async (request, reply) => {
      // Reserved before the token is checked, like a login (a success clears nothing).
      const attempt = plane.identities.limiter.begin([`addr:${request.ip}`]);
      try {
        const enrolled = await plane.agents.enroll(
          request.body.enrollmentToken,
          request.body.hostname,
          request.ip,
          request.body.csr,
        );
        return reply.status(201).send({ ...enrolled, heartbeatIntervalMs });
      } catch (error) {
        // Guesses count: a token that is wrong, used or expired (not a bad CSR or a taken host name).
        if (
          isZenithError(error) &&
          ['ZEN_UNAUTHENTICATED', 'ZEN_TOKEN_EXPIRED'].includes(error.code)
        )
          attempt.fail();
        throw error;
      } finally {
        attempt.release();
      }
    },
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
  app.get(
    '/agents/:id/certificates',
    {
      config: { permission: 'connection.read' },
      schema: {
        tags: ['agents'],
        summary: "An agent's client certificates (serials, validity, revocation), oldest first",
        params: IdParams,
        response: { 200: Type.Object({ items: Type.Array(CertificateRecord) }) },
      },
    },
    async (request) => {
      const agent = await plane.agents.get(request.params.id);
      return { items: await plane.agents.certificates.list(agent.id) };
    },
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
      plane.agentHub.disconnect(agent.id, 'ZEN_CREDENTIAL_REVOKED: this agent was revoked');
      return agent;
    },
  );
  app.get(
    '/agents/channel',
    {
      websocket: true,
      // Public at the HTTP level: the agent proves itself inside the channel with its certificate.
      config: { public: true },
      schema: { hide: true },
    },
    async (socket, request) => {
      try {
        const { agent, principal, session } = await handshake(socket, plane);
        // The certificate this channel stands on, and one renewed but not yet switched to.
        let serial = session.serial;
        let pending: string | null = null;
        plane.agentHub.attach(agent.id, socket, {
          heartbeat: (facts) => {
            plane.agents
              .heartbeat(principal, facts)
              .catch((error: unknown) => request.log.warn({ err: error }, 'heartbeat failed'));
          },
          renew: async (csr) => {
            const issued = await plane.agents.certificates.renew(serial, csr);
            pending = issued.serial;
            request.log.info(
              { agentId: agent.id, serial: issued.serial, replaces: serial },
              'agent certificate renewed',
            );
            return {
              certificate: issued.certificate,
              notAfter: issued.notAfter,
              renewInMs: plane.agents.certificates.renewInMs(issued.notBefore, issued.notAfter),
            };
          },
          switched: async () => {
            if (pending === null) return;
            await plane.agents.certificates
              .activate(pending)
              .catch((error: unknown) =>
                request.log.warn({ err: error }, 'the certificate switch failed'),
              );
            serial = pending;
            pending = null;
          },
        });
        await plane.agents.heartbeat(principal, {});
      } catch (error) {
        const coded = isZenithError(error)
          ? error
          : new ZenithError('ZEN_UNAUTHENTICATED', 'the channel handshake failed');
        const refused: ChannelHandshake = {
          type: 'refused',
          error: { code: coded.code, message: coded.message },
        };
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(refused));
        socket.close(4401, `${coded.code}: ${coded.message}`.slice(0, 120));
      }
    },
  );
}

/** The signed-challenge handshake (docs/decisions/0016): a nonce out, the certificate and a signature back. */
async function handshake(socket: WebSocket, plane: ControlPlane) {
  const nonce = newNonce();
  const hello = await new Promise<Extract<ChannelHandshake, { type: 'hello' }>>(
    (resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new ZenithError('ZEN_UNAUTHENTICATED', 'no certificate was presented in time')),
        handshakeTimeoutMs,
      );
      socket.once('message', (data: Buffer) => {
        clearTimeout(timer);
        let message: Partial<ChannelHandshake>;
        try {
          message = JSON.parse(data.toString('utf8')) as Partial<ChannelHandshake>;
        } catch {
          message = {};
        }
        if (
          message.type !== 'hello' ||
          typeof message.certificate !== 'string' ||
          typeof message.signature !== 'string'
        )
          reject(
            new ZenithError(
              'ZEN_UNAUTHENTICATED',
              'the channel opens with a certificate and a signature over the challenge',
            ),
          );
        else resolve(message as Extract<ChannelHandshake, { type: 'hello' }>);
      });
      socket.once('close', () => clearTimeout(timer));
      const challenge: ChannelHandshake = { type: 'challenge', nonce };
      socket.send(JSON.stringify(challenge));
    },
  );
  const authenticated = await plane.agents.authenticateChannel(
    hello.certificate,
    nonce,
    hello.signature,
  );
  const welcome: ChannelHandshake = {
    type: 'welcome',
    agentId: authenticated.agent.id,
    serial: authenticated.session.serial,
    notAfter: authenticated.session.notAfter,
    renewInMs: authenticated.session.renewInMs,
  };
  socket.send(JSON.stringify(welcome));
  return authenticated;
}
