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
  /** Per channel: the list it was told, and the restart count it was told at. */
  readonly #told = new WeakMap<AgentLink, { list: string; restartsRun: number }>();
  #lastRun = 0;

  constructor(
    private readonly deps: {
      store: HaStore;
      inventory: InventoryService;
      agentHub: AgentHub;
      logger: Logger;
    },
  ) {}

  /**
   * Every few seconds: tells each agent host the detector hears the VMs that moved away from it —
   * read only for hosts on a channel not told yet, or told before the latest restart ran.
   */
  async run(
    now: number,
    agentIds: ReadonlyMap<string, string>,
    answering: (hostId: string) => boolean,
  ): Promise<void> {
    if (now - this.#lastRun < 3_000) return;
    this.#lastRun = now;
    const { index } = this.deps.inventory;
    const restartsRun = this.deps.store.restartsRun;
    const due = new Map<string, { link: AgentLink; connectionId: string; name: string }>();
    for (const host of index.ofKind('host')) {
      // Only a host the detector hears now: one cut off would hold the call to its deadline.
      if (!host.connectionId || !answering(host.id)) continue;
      const agentId = agentIds.get(host.connectionId);
      const link = agentId ? this.deps.agentHub.link(agentId) : undefined;
      if (!link?.connected || !link.supports('discardMovedVms')) continue;
      if (this.#told.get(link)?.restartsRun === restartsRun) continue;
      due.set(host.id, { link, connectionId: host.connectionId, name: host.name });
    }
    if (due.size === 0) return;
    const uuidsOf = new Map<string, Set<string>>();
    for (const { vmId, hostId } of await this.deps.store.movedAway([...due.keys()])) {
      const vm = index.get(vmId);
      const uuid = vm?.facts['vm.uuid'];
      // A VM that came back to that host (moved there again) is its own there now.
      if (!vm || vm.connectionId === due.get(hostId)!.connectionId) continue;
      if (typeof uuid !== 'string') continue;
      const uuids = uuidsOf.get(hostId) ?? new Set<string>();
      uuids.add(uuid);
      uuidsOf.set(hostId, uuids);
    }
    for (const [hostId, { link, name }] of due) {
      const list = [...(uuidsOf.get(hostId) ?? [])].sort();
      const wanted = list.join(',');
      if (list.length === 0 || this.#told.get(link)?.list === wanted) {
        this.#told.set(link, { list: wanted, restartsRun });
        continue;
      }
      try {
        const { discarded, kept } = await link.call('discardMovedVms', [list], {
          timeoutMs: 10_000,
        });
        this.#told.set(link, { list: wanted, restartsRun });
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
