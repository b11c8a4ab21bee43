/**
 * A host that VMs failed over away from, back: its agent still has their definitions (stopped:
 * it was fenced). The inventory leaves them out (VmHandovers.disown); this tells the agent which
 * of its VMs moved away — by UUID, those whose VM now lives on another connection — so it removes
 * what is left of them (discardMovedVms, protocol 1.3: definition, run files; never disks). Told
 * again on each new channel until the list it was told is the one it would be told.
 */
import type { Logger } from '../../core/logger.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import type { AgentHub } from '../agents/agent-hub.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { HaStore } from './ha-store.js';

export class MovedAwayDiscards {
  readonly #told = new WeakMap<AgentLink, string>();
  #lastRun = 0;

  constructor(
    private readonly deps: {
      store: HaStore;
      inventory: InventoryService;
      agentHub: AgentHub;
      logger: Logger;
    },
  ) {}

  /** Every few seconds: tells each connected agent host the VMs that moved away from it. */
  async run(
    now: number,
    agentIds: ReadonlyMap<string, string>,
    answering: (hostId: string) => boolean,
  ): Promise<void> {
    if (now - this.#lastRun < 3_000) return;
    this.#lastRun = now;
    const { index } = this.deps.inventory;
    const byHost = new Map<string, { connectionId: string; name: string; uuids: Set<string> }>();
    for (const { vmId, hostId } of await this.deps.store.movedAway()) {
      const host = index.get(hostId);
      const vm = index.get(vmId);
      const uuid = vm?.facts['vm.uuid'];
      // A VM that came back to that host (moved there again) is its own there now.
      if (!host?.connectionId || !vm || vm.connectionId === host.connectionId) continue;
      if (typeof uuid !== 'string') continue;
      let entry = byHost.get(hostId);
      if (!entry)
        byHost.set(
          hostId,
          (entry = { connectionId: host.connectionId, name: host.name, uuids: new Set() }),
        );
      entry.uuids.add(uuid);
    }
    for (const [hostId, { connectionId, name, uuids }] of byHost) {
      // Only a host the detector hears now: one cut off would hold the call to its deadline.
      if (!answering(hostId)) continue;
      const agentId = agentIds.get(connectionId);
      const link = agentId ? this.deps.agentHub.link(agentId) : undefined;
      if (!link?.connected || !link.supports('discardMovedVms')) continue;
      const list = [...uuids].sort();
      const wanted = list.join(',');
      if (this.#told.get(link) === wanted) continue;
      try {
        const { discarded, kept } = await link.call('discardMovedVms', [list], {
          timeoutMs: 10_000,
        });
        this.#told.set(link, wanted);
        if (discarded.length > 0)
          this.deps.logger.info(
            { host: name, discarded },
            'a host back after a failover discarded the VMs that moved away',
          );
        for (const { uuid, reason } of kept)
          this.deps.logger.error(
            { host: name, uuid, reason },
            'a host back after a failover still has a VM that moved away',
          );
      } catch (error) {
        this.deps.logger.warn({ err: error, host: name }, 'telling a host what moved away failed');
      }
    }
  }
}
