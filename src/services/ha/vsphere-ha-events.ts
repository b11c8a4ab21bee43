/**
 * `ha.vsphereHostState`: a vSphere host's state as vSphere HA reports it (its `ha.vsphere.hostState`
 * fact) changed. Follows the inventory's events of this process (the replica that reconciled the
 * connection publishes, once); a host's first report is its starting point, not a change, so
 * adding a vCenter does not announce every host.
 */
import type { Logger } from '../../core/logger.js';
import type { EventBus, NewEvent, ZenithEvent } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import { isVsphereHost } from './vsphere-ha.js';

const stateFact = 'ha.vsphere.hostState';

export class VsphereHaEvents {
  /** Each known vSphere host's last state (null: none reported). */
  readonly #states = new Map<string, string | null>();
  #unsubscribe: (() => void) | undefined;
  #publishing: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: { inventory: InventoryService; events: EventBus; logger: Logger },
  ) {}

  start(): void {
    for (const host of this.deps.inventory.index.ofKind('host'))
      if (isVsphereHost(host)) this.#states.set(host.id, stateOf(host));
    this.#unsubscribe = this.deps.events.subscribe((event) => this.#follow(event));
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  /** Waits for events being published (tests, shutdown). */
  settled(): Promise<void> {
    return this.#publishing;
  }

  #follow(event: ZenithEvent): void {
    const { index } = this.deps.inventory;
    if (event.type === 'inventory.synced') {
      // A large reconcile sends this summary instead of an event per object: look at them all.
      this.#check(
        index
          .ofKind('host')
          .filter((host) => host.connectionId === event.data.connectionId)
          .map((host) => host.id),
      );
      return;
    }
    if (!event.objectId || !('kind' in event.data) || event.data.kind !== 'host') return;
    if (event.type === 'inventory.deleted' || event.type === 'inventory.missing') {
      this.#states.delete(event.objectId);
      return;
    }
    if (event.type === 'inventory.created') {
      const host = index.get(event.objectId);
      if (host && isVsphereHost(host)) this.#states.set(host.id, stateOf(host));
      return;
    }
    if (event.type === 'inventory.updated' && event.data.changed?.includes(stateFact))
      this.#check([event.objectId]);
  }

  #check(hostIds: string[]): void {
    const events: NewEvent[] = [];
    for (const id of hostIds) {
      const host = this.deps.inventory.index.get(id);
      if (!host || !isVsphereHost(host) || host.status !== 'present') continue;
      const state = stateOf(host);
      const previous = this.#states.get(id);
      this.#states.set(id, state);
      if (previous === undefined || previous === state) continue;
      const parent = host.parentId ? this.deps.inventory.index.get(host.parentId) : undefined;
      events.push({
        type: 'ha.vsphereHostState',
        objectId: id,
        data: {
          name: host.name,
          state,
          previous,
          clusterId: parent?.kind === 'cluster' ? parent.id : null,
        },
      });
    }
    if (events.length === 0) return;
    this.#publishing = this.#publishing
      .then(async () => {
        await this.deps.events.publish(events);
      })
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'publishing vSphere HA host states failed'),
      );
  }
}

function stateOf(host: ManagedObject): string | null {
  const state = host.facts[stateFact];
  return typeof state === 'string' ? state : null;
}
