/**
 * The lifecycle of a libvirt connection as a named state machine:
 * connecting → authenticating → open → closing → closed. Any state may fall to
 * closed (transport lost, protocol error, keepalive timeout).
 */
import { ZenithError } from '../../core/errors.js';

export type LibvirtConnectionState =
  'connecting' | 'authenticating' | 'open' | 'closing' | 'closed';

const allowed: Record<LibvirtConnectionState, readonly LibvirtConnectionState[]> = {
  connecting: ['authenticating', 'closing', 'closed'],
  authenticating: ['open', 'closing', 'closed'],
  open: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export class ConnectionStateMachine {
  #state: LibvirtConnectionState = 'connecting';
  readonly #onChange: (state: LibvirtConnectionState, previous: LibvirtConnectionState) => void;

  constructor(onChange: (state: LibvirtConnectionState, previous: LibvirtConnectionState) => void) {
    this.#onChange = onChange;
  }

  get state(): LibvirtConnectionState {
    return this.#state;
  }

  canMoveTo(next: LibvirtConnectionState): boolean {
    return allowed[this.#state].includes(next);
  }

  moveTo(next: LibvirtConnectionState): void {
    if (!this.canMoveTo(next)) {
      throw new ZenithError(
        'ZEN_INTERNAL',
        `libvirt connection cannot go from ${this.#state} to ${next}`,
      );
    }
    const previous = this.#state;
    this.#state = next;
    this.#onChange(next, previous);
  }
}
