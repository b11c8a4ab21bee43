/**
 * An agent host's portable-VM facet: describe and run calls over the channel
 * to the agent's QEMU driver (protocol 1.1). An agent of an older protocol
 * has no such calls: its driver does not declare the facet.
 */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type { PortableVm, PortableVmFacet, RunOptions } from '../facets/portable-vm.js';
import { speaks } from '../../protocols/agent-channel/version.js';
import type { AgentCaller } from './agent-caller.js';

/** The protocol that carries runVm's `paused`. */
const pausedSince = { major: 1, minor: 7 };

export class AgentPortableVms implements PortableVmFacet {
  /** Over its own stopped definition, keeping its id (a restore over the original). */
  readonly redefinesStopped = true;

  constructor(private readonly agent: AgentCaller) {}

  /** An agent of protocol 1.7 or later (an older one would run the guest at once). */
  get startsPaused(): boolean {
    const link = this.agent.open();
    return link !== undefined && speaks(link.protocol, pausedSince);
  }

  describeVm(id: string): Promise<PortableVm> {
    return this.agent.call('describeVm', [id], 60_000);
  }

  /** A start waits for QEMU, as a start does. */
  runVm(vm: PortableVm, options: RunOptions, context: ActionContext): Promise<DiscoveredVm> {
    // The agent's QEMU defines over its own stopped definition anyway (`over` is not sent).
    if (options.paused && !this.startsPaused)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        'the host agent cannot start a VM paused (agent channel protocol 1.7): upgrade the agent',
      );
    return this.agent.call(
      'runVm',
      [vm, { start: options.start, ...(options.paused ? { paused: true } : {}) }],
      5 * 60_000,
      context,
    );
  }
}
