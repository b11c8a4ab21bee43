/**
 * The control plane's end of one agent's channel, as the agent's driver uses
 * it: typed calls (answered, checked against the call map), the agent's
 * deltas and metrics, and relayed consoles.
 */
import type { Duplex } from 'node:stream';
import type { AgentMethod, CallArgs, CallResult } from './call-map.js';
import type { CallContext } from './dispatcher.js';
import type { ConsoleKind, InventoryDelta, VmMetrics } from './values.js';
import type { ProtocolVersion } from './version.js';

export interface AgentLink {
  readonly connected: boolean;
  /** The version both ends speak (the older of the two). */
  readonly protocol: ProtocolVersion;
  /** Whether the agent has this method (its protocol version includes it). */
  supports(method: AgentMethod): boolean;
  /**
   * A driver call; with a context, the agent's progress reaches it and its signal cancels the
   * call. A method the agent does not have is refused with ZEN_UNSUPPORTED without asking it; a
   * result that does not fit the call map with AGENT_CHANNEL_PROTOCOL_ERROR.
   */
  call<M extends AgentMethod>(
    method: M,
    args: CallArgs<M>,
    options?: { timeoutMs?: number; context?: CallContext },
  ): Promise<CallResult<M>>;
  /** The latest per-VM metrics the agent reported (by the VM's id on the agent). */
  metrics(vmId: string): VmMetrics | undefined;
  /** Deltas from the agent, from the moment of this call, until the signal aborts or the link drops. */
  deltas(signal: AbortSignal): AsyncIterable<InventoryDelta>;
  /** A VM's console, relayed through the channel. */
  openConsole(vmId: string, kind: ConsoleKind): Promise<Duplex>;
}
