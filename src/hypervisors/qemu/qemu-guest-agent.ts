/**
 * The guest-agent facet of a QEMU host: `guest-ping` on the VM's agent socket (the virtio-serial
 * channel org.qemu.guest_agent.0), asked again every half second until it answers.
 */
import { ZenithError } from '../../core/errors.js';
import { connectQga, type QgaClient } from '../../protocols/qga/index.js';
import type { ActionContext } from '../driver-types.js';
import type { GuestAgentFacet } from '../facets/guest-agent.js';
import { AGENT_PING_TIMEOUT_MS } from './guest-quiesce.js';
import type { QemuHost } from './qemu-host.js';

const RETRY_MS = 500;

export class QemuGuestAgent implements GuestAgentFacet {
  constructor(private readonly host: QemuHost) {}

  async waitForGuestAgent(id: string, timeoutMs: number, context: ActionContext): Promise<void> {
    const { clock } = this.host;
    const vm = this.host.vm(id);
    if (vm.record.spec.guestAgent !== true)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${vm.record.spec.name} has no guest agent channel to wait on`,
      );
    const deadline = clock.now() + timeoutMs;
    let why: string;
    for (;;) {
      if (vm.power === 'stopped')
        throw new ZenithError('ZEN_INVALID_STATE', `${vm.record.spec.name} stopped`);
      let agent: QgaClient | undefined;
      try {
        agent = await connectQga(vm.paths.agentSocket, { clock });
        await agent.ping({
          timeoutMs: Math.max(100, Math.min(AGENT_PING_TIMEOUT_MS, deadline - clock.now())),
        });
        return;
      } catch (error) {
        why = (error as Error).message;
      } finally {
        agent?.close();
      }
      if (clock.now() + RETRY_MS >= deadline)
        throw new ZenithError(
          'ZEN_TIMEOUT',
          `the guest agent of ${vm.record.spec.name} did not answer within ${Math.round(timeoutMs / 1000)} s (${why})`,
        );
      await clock.sleep(RETRY_MS, context.signal);
    }
  }
}
