/** Calls over an agent's channel, as the agent's driver and its facets make them. */
import { ZenithError } from '../../core/errors.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import type { AgentMethod, CallArgs, CallResult } from '../../protocols/agent-channel/call-map.js';
import type { ActionContext } from '../driver-types.js';

export class AgentCaller {
  constructor(private readonly link: () => AgentLink | undefined) {}

  /** The channel while it is open; undefined while the agent is not connected. */
  open(): AgentLink | undefined {
    const link = this.link();
    return link?.connected ? link : undefined;
  }

  /** The channel, or ZEN_CONNECTION_DISCONNECTED. */
  connected(): AgentLink {
    const link = this.open();
    if (!link)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected');
    return link;
  }

  /** Async, so that a missing agent is a rejection like any other failure of the call. */
  async call<M extends AgentMethod>(
    method: M,
    args: CallArgs<M>,
    timeoutMs?: number,
    context?: ActionContext,
  ): Promise<CallResult<M>> {
    return await this.connected().call(method, args, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(context ? { context } : {}),
    });
  }
}
