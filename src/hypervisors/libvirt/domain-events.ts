/**
 * libvirt's domain events as "this domain changed" notices. The event itself
 * is only a trigger: the domain is read again, so what reaches the inventory
 * is libvirt's current truth, not a replay of event details. Reads of one
 * domain never overlap and a burst of events collapses into one more read,
 * so the last report always follows the last event.
 */
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  DOMAIN_EVENT_ID,
  connectDomainEventCallbackRegisterAny,
  domainEventJobCompleted,
  domainEventLifecycle,
  domainEventReboot,
} from '../../protocols/libvirt/procedures/events.js';

interface Refresh {
  again: boolean;
}

export class DomainChangeNotices {
  readonly #pending = new Map<string, Refresh>();
  readonly #stops: (() => void)[] = [];

  constructor(
    private readonly client: LibvirtClient,
    /** Reads and reports one domain; must not throw. */
    private readonly refresh: (uuid: string) => Promise<void>,
  ) {}

  /** Subscribes to lifecycle, reboot and job-completed events of every domain. */
  async start(): Promise<void> {
    const notice = (uuid: string) => this.notice(uuid);
    this.#stops.push(
      this.client.onEvent(domainEventLifecycle, ({ msg }) => notice(msg.dom.uuid)),
      this.client.onEvent(domainEventReboot, ({ msg }) => notice(msg.dom.uuid)),
      this.client.onEvent(domainEventJobCompleted, ({ dom }) => notice(dom.uuid)),
    );
    for (const eventID of [
      DOMAIN_EVENT_ID.lifecycle,
      DOMAIN_EVENT_ID.reboot,
      DOMAIN_EVENT_ID.jobCompleted,
    ])
      await this.client.call(connectDomainEventCallbackRegisterAny, { eventID, dom: null });
  }

  /** Something happened to the domain: read it again (once more if a read is under way). */
  notice(uuid: string): void {
    const pending = this.#pending.get(uuid);
    if (pending) {
      pending.again = true;
      return;
    }
    const refresh: Refresh = { again: false };
    this.#pending.set(uuid, refresh);
    const run = async () => {
      do {
        refresh.again = false;
        // refresh must not throw; if it does anyway, the next event reads the domain again.
        await this.refresh(uuid).catch(() => undefined);
      } while (refresh.again);
      this.#pending.delete(uuid);
    };
    // Cannot fail: every await in it is caught.
    run().catch(() => undefined);
  }

  stop(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }
}
