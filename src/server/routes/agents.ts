import type { WebSocket } from 'ws';
import {
  createEnrollmentToken,
  enrollAgent,
  listAgentCertificates,
  listAgents,
  revokeAgent,
} from '../../api/agents.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { encodeForAgent } from '../../protocols/agent-channel/codec.js';
import { readHello } from '../../protocols/agent-channel/handshake.js';
import { channelProtocol, formatVersion } from '../../protocols/agent-channel/version.js';
import { newNonce } from '../../services/agents/agent-certificates.js';
import type { AgentHub } from '../../services/agents/agent-hub.js';
import { heartbeatIntervalMs, type AgentService } from '../../services/agents/agent-service.js';
import type { IdentityService } from '../../services/identity/identity-service.js';
import { actorOf, principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

/** How long an agent has to answer the channel's challenge. */
const handshakeTimeoutMs = 10_000;

export interface AgentRouteServices {
  agents: AgentService;
  agentHub: AgentHub;
  identities: IdentityService;
}

export async function agentRoutes(
  app: Api,
  { agents, agentHub, identities }: AgentRouteServices,
): Promise<void> {
  serve(app, createEnrollmentToken, { audit: 'agent.enrollmentToken' }, async (request, reply) =>
    reply
      .status(201)
      .send(
        await agents.createEnrollmentToken(
          actorOf(principalOf(request)),
          (request.body.ttlMinutes ?? 60) * 60_000,
        ),
      ),
  );
  serve(app, enrollAgent, { audit: 'agent.enroll' }, async (request, reply) => {
    // Reserved before the token is checked, like a login (a success clears nothing).
    const attempt = identities.limiter.begin([`addr:${request.ip}`]);
    try {
      const enrolled = await agents.enroll(
        request.body.enrollmentToken,
        request.body.hostname,
        request.ip,
        request.body.csr,
      );
      return reply.status(201).send({ ...enrolled, heartbeatIntervalMs });
    } catch (error) {
      // Guesses count: a token that is wrong, used or expired (not a bad CSR or a taken host name).
      if (isZenithError(error) && ['ZEN_UNAUTHENTICATED', 'ZEN_TOKEN_EXPIRED'].includes(error.code))
        attempt.fail();
      throw error;
    } finally {
      attempt.release();
    }
  });
  serve(app, listAgents, {}, async () => ({ items: await agents.list() }));
  serve(app, listAgentCertificates, {}, async (request) => {
    const agent = await agents.get(request.params.id);
    return { items: await agents.certificates.list(agent.id) };
  });
  serve(app, revokeAgent, { audit: 'agent.revoke' }, async (request) => {
    const agent = await agents.revoke(request.params.id);
    // Cut off at once, not at its next request.
    agentHub.disconnect(agent.id, 'ZEN_CREDENTIAL_REVOKED: this agent was revoked');
    return agent;
  });
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
        const { agent, principal, session, protocol } = await handshake(socket, agents);
        // The certificate this channel stands on, and one renewed but not yet switched to.
        let serial = session.serial;
        let pending: string | null = null;
        agentHub.attach(agent.id, socket, protocol, {
          heartbeat: (facts) => {
            agents
              .heartbeat(principal, facts)
              .catch((error: unknown) => request.log.warn({ err: error }, 'heartbeat failed'));
          },
          renew: async (csr) => {
            const issued = await agents.certificates.renew(serial, csr);
            pending = issued.serial;
            request.log.info(
              { agentId: agent.id, serial: issued.serial, replaces: serial },
              'agent certificate renewed',
            );
            return {
              certificate: issued.certificate,
              notAfter: issued.notAfter,
              renewInMs: agents.certificates.renewInMs(issued.notBefore, issued.notAfter),
            };
          },
          switched: async () => {
            if (pending === null) return;
            await agents.certificates
              .activate(pending)
              .catch((error: unknown) =>
                request.log.warn({ err: error }, 'the certificate switch failed'),
              );
            serial = pending;
            pending = null;
          },
        });
        await agents.heartbeat(principal, {});
      } catch (error) {
        const coded = isZenithError(error)
          ? error
          : new ZenithError('ZEN_UNAUTHENTICATED', 'the channel handshake failed');
        if (socket.readyState === socket.OPEN)
          socket.send(
            encodeForAgent({
              type: 'refused',
              error: { code: coded.code, message: coded.message },
            }),
          );
        socket.close(4401, `${coded.code}: ${coded.message}`.slice(0, 120));
      }
    },
  );
}

/** The signed-challenge handshake (docs/decisions/0016): a nonce out, the certificate and a signature back. */
async function handshake(socket: WebSocket, agents: AgentService) {
  const nonce = newNonce();
  // The hello is read by the protocol module: its version first (another major is refused with
  // ZEN_AGENT_INCOMPATIBLE), then its certificate and signature.
  const first = await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ZenithError('ZEN_UNAUTHENTICATED', 'no certificate was presented in time')),
      handshakeTimeoutMs,
    );
    socket.once('message', (data: Buffer) => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.once('close', () => clearTimeout(timer));
    socket.send(
      encodeForAgent({ type: 'challenge', nonce, protocol: formatVersion(channelProtocol) }),
    );
  });
  const { hello, protocol } = readHello(first);
  const authenticated = await agents.authenticateChannel(hello.certificate, nonce, hello.signature);
  socket.send(
    encodeForAgent({
      type: 'welcome',
      agentId: authenticated.agent.id,
      serial: authenticated.session.serial,
      notAfter: authenticated.session.notAfter,
      renewInMs: authenticated.session.renewInMs,
      protocol: formatVersion(protocol),
    }),
  );
  return { ...authenticated, protocol };
}
