/** Calls over an agent's channel, as the agent's driver and its facets make them. */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext } from '../driver-types.js';
import type { AgentLink, AgentMethod } from './agent-link.js';

export class AgentCaller {
  constructor(private readonly link: () => AgentLink | undefined) {}

  /** The channel, or ZEN_CONNECTION_DISCONNECTED. */
  connected(): AgentLink {
    const link = this.link();
    if (!link?.connected)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected');
    return link;
  }

  async call<T>(
    method: AgentMethod,
    args: unknown[],
    timeoutMs?: number,
    context?: ActionContext,
  ): Promise<T> {
    return (await this.connected().call(method, args, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(context ? { context } : {}),
    })) as T;
  }
}
