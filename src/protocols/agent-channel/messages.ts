/**
 * The messages of the agent channel: JSON objects, one per WebSocket message
 * (the WebSocket frames them), each named by its `type`. A channel opens with
 * the handshake — the control plane's challenge, the agent's hello with its
 * certificate, its signature over the challenge and its protocol version, and
 * a welcome or a refusal (decision 0016) — then the control plane calls
 * driver methods (call-map.ts) and the agent answers, reports progress,
 * pushes inventory deltas and heartbeats, relays consoles and renews its
 * certificate.
 */
import { Type, type Static, type TSchema } from 'typebox';
import {
  ActionProgress,
  CodedError,
  CodedErrorWithDetails,
  ConsoleKind,
  InventoryDelta,
  VmMetrics,
} from './values.js';

const version = Type.String({ maxLength: 16 });
const callId = Type.Integer({ minimum: 0 });
const stream = Type.Integer({ minimum: 0 });

/** The control plane's side of the handshake. */
export const fromControlPlaneHandshake = {
  challenge: Type.Object({
    type: Type.Literal('challenge'),
    nonce: Type.String(),
    /** Since 1.1: the control plane's protocol version. */
    protocol: Type.Optional(version),
  }),
  welcome: Type.Object({
    type: Type.Literal('welcome'),
    agentId: Type.String(),
    serial: Type.String(),
    notAfter: Type.Number(),
    renewInMs: Type.Number(),
    /** Since 1.1: the version both ends speak. */
    protocol: Type.Optional(version),
  }),
  refused: Type.Object({ type: Type.Literal('refused'), error: CodedError }),
};

/** The agent's side of the handshake. */
export const fromAgentHandshake = {
  hello: Type.Object({
    type: Type.Literal('hello'),
    certificate: Type.String(),
    signature: Type.String(),
    /** Since 1.1; an agent without it speaks 1.0. */
    protocol: Type.Optional(version),
  }),
};

/** What the control plane sends once the channel is open. */
export const toAgent = {
  call: Type.Object({
    type: Type.Literal('call'),
    id: callId,
    // Any name: a method this agent does not know is answered ZEN_UNSUPPORTED, not refused here.
    method: Type.String(),
    args: Type.Array(Type.Unknown()),
  }),
  /** The caller gave up (a cancelled task): the agent aborts the call's work. */
  cancel: Type.Object({ type: Type.Literal('cancel'), id: callId }),
  'console-open': Type.Object({
    type: Type.Literal('console-open'),
    stream,
    vmId: Type.String(),
    kind: ConsoleKind,
  }),
  /** Console bytes travel base64-encoded; `stream` numbers are chosen by the control plane. */
  'console-data': Type.Object({ type: Type.Literal('console-data'), stream, data: Type.String() }),
  'console-close': Type.Object({ type: Type.Literal('console-close'), stream }),
  /** A renewed certificate (the answer to `renew`); the agent keeps it, then says `switched`. */
  renewed: Type.Object({
    type: Type.Literal('renewed'),
    certificate: Type.String(),
    notAfter: Type.Number(),
    renewInMs: Type.Number(),
  }),
  'renew-failed': Type.Object({ type: Type.Literal('renew-failed'), error: CodedError }),
};

/** What the agent sends once the channel is open. */
export const fromAgent = {
  result: Type.Union([
    Type.Object({
      type: Type.Literal('result'),
      id: callId,
      ok: Type.Literal(true),
      value: Type.Unknown(),
    }),
    Type.Object({
      type: Type.Literal('result'),
      id: callId,
      ok: Type.Literal(false),
      error: CodedErrorWithDetails,
    }),
  ]),
  delta: Type.Object({ type: Type.Literal('delta'), delta: InventoryDelta }),
  /** Progress of a long call (a migration), routed to the task that made it. */
  progress: Type.Object({ type: Type.Literal('progress'), id: callId, update: ActionProgress }),
  heartbeat: Type.Object({
    type: Type.Literal('heartbeat'),
    facts: Type.Record(Type.String(), Type.Unknown()),
    metrics: Type.Optional(Type.Record(Type.String(), VmMetrics)),
  }),
  'console-opened': Type.Object({ type: Type.Literal('console-opened'), stream }),
  'console-data': Type.Object({ type: Type.Literal('console-data'), stream, data: Type.String() }),
  'console-close': Type.Object({
    type: Type.Literal('console-close'),
    stream,
    error: Type.Optional(CodedError),
  }),
  /** A certificate signing request for a new key pair, before the current certificate expires. */
  renew: Type.Object({ type: Type.Literal('renew'), csr: Type.String() }),
  /** The renewed certificate is stored: the control plane revokes the one it replaces. */
  switched: Type.Object({ type: Type.Literal('switched') }),
};

type MessageOf<Map extends Record<string, TSchema>> = {
  [K in keyof Map]: Static<Map[K]>;
}[keyof Map];

export type ControlPlaneHandshake = MessageOf<typeof fromControlPlaneHandshake>;
export type AgentHandshake = MessageOf<typeof fromAgentHandshake>;
export type ToAgent = MessageOf<typeof toAgent>;
export type FromAgent = MessageOf<typeof fromAgent>;

/** Everything an agent may receive, and everything the control plane may receive. */
export const agentReceives = { ...fromControlPlaneHandshake, ...toAgent };
export const controlPlaneReceives = { ...fromAgentHandshake, ...fromAgent };
export type AgentReceives = ControlPlaneHandshake | ToAgent;
export type ControlPlaneReceives = AgentHandshake | FromAgent;
