/**
 * The guest-agent facet: whether a VM's guest agent (qemu-ga on its virtio-serial channel)
 * answers. For a guest that runs one, that is what "up" means to whoever waits on it: its
 * services started, not only its kernel (a recovery plan's wait).
 */
import type { ActionContext } from '../driver-types.js';

export interface GuestAgentFacet {
  /**
   * Resolves once the VM's guest agent answers a ping, asking again until `timeoutMs` has passed
   * (then ZEN_TIMEOUT, with the last reason); ZEN_UNSUPPORTED for a VM without a guest agent
   * channel, ZEN_INVALID_STATE for one that does not run.
   */
  waitForGuestAgent(vmExternalId: string, timeoutMs: number, context: ActionContext): Promise<void>;
}
