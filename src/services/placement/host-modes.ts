/**
 * The modes Zenith keeps for hosts: `entering-maintenance` while an
 * evacuation empties a host (nothing new is placed there), `maintenance`
 * once it is empty, `normal` otherwise. Stored (a restart keeps them), shown
 * on the host as the computed fact `host.mode`, and read by placement.
 */
import type { Clock } from '../../core/clock.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { HostMode } from './slots.js';

export class HostModeService {
  readonly #modes = new Map<string, HostMode>();

  constructor(
    private readonly deps: {
      store: Store;
      inventory: InventoryService;
      events: EventBus;
      clock: Clock;
    },
  ) {}

  async load(): Promise<void> {
    const rows = await this.deps.store.db.selectFrom('host_modes').selectAll().execute();
    for (const row of rows) {
      this.#modes.set(row.host_id, row.mode as HostMode);
      this.deps.inventory.setOverlay('host-modes', row.host_id, { 'host.mode': row.mode });
    }
  }

  get modes(): ReadonlyMap<string, HostMode> {
    return this.#modes;
  }

  modeOf(hostId: string): HostMode {
    return this.#modes.get(hostId) ?? 'normal';
  }

  async set(
    hostId: string,
    mode: HostMode,
    actor: Actor,
    planId: string | null = null,
  ): Promise<void> {
    const previous = this.modeOf(hostId);
    const now = this.deps.clock.now();
    const persisted = await this.deps.store.transaction(async (tx) => {
      await tx.deleteFrom('host_modes').where('host_id', '=', hostId).execute();
      if (mode !== 'normal')
        await tx
          .insertInto('host_modes')
          .values({ host_id: hostId, mode, plan_id: planId, since: now, updated_by: actor.id })
          .execute();
      return this.deps.events.persist(tx, [
        { type: 'host.mode', objectId: hostId, data: { mode, previous, planId } },
      ]);
    });
    if (mode === 'normal') this.#modes.delete(hostId);
    else this.#modes.set(hostId, mode);
    this.deps.inventory.setOverlay(
      'host-modes',
      hostId,
      mode === 'normal' ? null : { 'host.mode': mode },
    );
    this.deps.events.deliver(persisted);
  }
}
