/**
 * An agent host's portable-VM facet: describe and run calls over the channel
 * to the agent's QEMU driver (protocol 1.1). An agent of an older protocol
 * has no such calls: its driver does not declare the facet.
 */
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type { PortableVm, PortableVmFacet, RunOptions } from '../facets/portable-vm.js';
import type { AgentCaller } from './agent-caller.js';

export class AgentPortableVms implements PortableVmFacet {
  /** Over its own stopped definition, keeping its id (a restore over the original). */
  readonly redefinesStopped = true;

  constructor(private readonly agent: AgentCaller) {}

  describeVm(id: string): Promise<PortableVm> {
    return this.agent.call('describeVm', [id], 60_000);
  }

  /** A start waits for QEMU, as a start does. */
  runVm(vm: PortableVm, options: RunOptions, context: ActionContext): Promise<DiscoveredVm> {
    // The agent's QEMU defines over its own stopped definition anyway (`over` is not sent).
    return this.agent.call('runVm', [vm, { start: options.start }], 5 * 60_000, context);
  }
}
