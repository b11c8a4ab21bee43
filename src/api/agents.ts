/** Host agents: one-time enrollment tokens, enrollment (a CSR for a certificate), and revocation. */
import { Type, type Static } from 'typebox';
import { IdParams, Items, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';

export const AgentView = Type.Object({
  id: Type.String(),
  identityId: Type.String(),
  hostname: Type.String(),
  facts: Type.Record(Type.String(), Type.Unknown()),
  address: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: Type.Number(),
  lastSeenAt: NullableInstant,
  state: StringEnum(['connected', 'disconnected', 'revoked']),
});
export type AgentView = Static<typeof AgentView>;

const CertificateView = Type.Object({
  /** Lower-case hex. */
  serial: Type.String(),
  /** PEM. */
  certificate: Type.String(),
  notBefore: Type.Number(),
  notAfter: Type.Number(),
});

export const CertificateRecord = Type.Object({
  serial: Type.String(),
  agentId: Type.String(),
  notBefore: Type.Number(),
  notAfter: Type.Number(),
  issuedAt: Type.Number(),
  replaces: Type.Union([Type.String(), Type.Null()]),
  revokedAt: NullableInstant,
  revokedReason: Type.Union([Type.String(), Type.Null()]),
});
export type CertificateRecord = Static<typeof CertificateRecord>;

export const createEnrollmentToken = operation({
  method: 'POST',
  path: '/agents/enrollment-tokens',
  auth: 'agent.manage',
  tag: 'agents',
  summary: 'A one-time token for enrolling one host agent (shown once)',
  body: Type.Object(
    { ttlMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10080, default: 60 })) },
    { additionalProperties: false },
  ),
  success: {
    201: Type.Object({ id: Type.String(), token: Type.String(), expiresAt: Type.Number() }),
  },
});

export const enrollAgent = operation({
  method: 'POST',
  path: '/agents/enroll',
  // Reachable without a session: the one-time token in the body is the credential.
  auth: 'public',
  tag: 'agents',
  summary: 'An agent trades its one-time token and a CSR for a client certificate from Zenith’s CA',
  body: Type.Object(
    {
      enrollmentToken: Type.String({ minLength: 10, maxLength: 200 }),
      hostname: Type.String({ minLength: 1, maxLength: 253 }),
      csr: Type.String({ minLength: 1, maxLength: 8192 }),
    },
    { additionalProperties: false },
  ),
  success: {
    201: Type.Object({
      agent: AgentView,
      certificate: CertificateView,
      caCertificate: Type.String(),
      heartbeatIntervalMs: Type.Number(),
    }),
  },
  errors: [401, 409, 429],
});

export const listAgents = operation({
  method: 'GET',
  path: '/agents',
  auth: 'connection.read',
  tag: 'agents',
  summary: 'Enrolled agents and whether they are connected',
  success: { 200: Items(AgentView) },
});

export const listAgentCertificates = operation({
  method: 'GET',
  path: '/agents/:id/certificates',
  auth: 'connection.read',
  tag: 'agents',
  summary: "An agent's client certificates (serials, validity, revocation), oldest first",
  params: IdParams,
  success: { 200: Items(CertificateRecord) },
});

export const revokeAgent = operation({
  method: 'DELETE',
  path: '/agents/:id',
  auth: 'agent.manage',
  tag: 'agents',
  summary: 'Revoke an agent: its credentials stop working at once',
  params: IdParams,
  success: { 200: AgentView },
});
