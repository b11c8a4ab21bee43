/** High availability on the agent, as it crosses the channel (protocol 1.2). */
import { Type, type Static } from 'typebox';

/** What an agent does with its running VMs when it has lost the control plane but not its storage. */
export const IsolationResponse = Type.Union([
  Type.Literal('leave-running'),
  Type.Literal('shutdown'),
  Type.Literal('power-off'),
]);

/** configureHa's argument: the agent's watchdog settings (persisted in its state directory). */
export const HaAgentSettings = Type.Object({
  enabled: Type.Boolean(),
  isolationResponse: IsolationResponse,
  /** VMs (by UUID) whose own settings answer isolation otherwise than the host's. */
  vmIsolationResponses: Type.Optional(Type.Record(Type.String(), IsolationResponse)),
  /** The channel down this long while the storage heartbeat still succeeds: isolated. */
  isolationSeconds: Type.Number({ minimum: 0 }),
  /** The channel down and no storage heartbeat written this long: the agent kills its VMs. */
  selfFenceSeconds: Type.Number({ exclusiveMinimum: 0 }),
  /** How often the storage heartbeat is written (default 1000). */
  heartbeatMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000 })),
  /** How long a guest is given to shut down (isolation response shutdown) before power-off (default 30). */
  shutdownSeconds: Type.Optional(Type.Number({ minimum: 0 })),
});
export type HaAgentSettings = Static<typeof HaAgentSettings>;
