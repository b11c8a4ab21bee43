/**
 * An agent host's guest-agent facet: the wait runs on the agent (protocol 1.7), next to the VM's
 * agent socket; the call is given the wait's time and a little more to answer.
 */
import type { ActionContext } from '../driver-types.js';
import type { GuestAgentFacet } from '../facets/guest-agent.js';
import type { AgentCaller } from './agent-caller.js';

export class AgentGuestAgent implements GuestAgentFacet {
  constructor(private readonly agent: AgentCaller) {}

  async waitForGuestAgent(id: string, timeoutMs: number, context: ActionContext): Promise<void> {
    await this.agent.call('waitForGuestAgent', [id, timeoutMs], timeoutMs + 10_000, context);
  }
}
