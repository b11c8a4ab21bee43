/**
 * The storage heartbeats of the HA hosts, read once per second: each storage root the HA hosts use
 * is read through a live agent that has it (readHaHeartbeats), or where the control plane itself
 * sees it. One read per root serves every host writing there.
 */
import { existsSync } from 'node:fs';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { readHeartbeatDir, type HaHeartbeat } from '../../protocols/ha-heartbeat.js';
import type { AgentHub } from '../agents/agent-hub.js';
import type { PlacementModel } from '../placement/placement-model.js';
import { haOfHost } from './ha-settings.js';
import { healthySilenceMs } from './host-watch.js';

export class HeartbeatReader {
  /** The latest heartbeat of each host, by host name (the highest counter over its roots). */
  #beats = new Map<string, HaHeartbeat>();
  #startedAt = 0;
  #readAt: number | null = null;

  constructor(private readonly deps: { agentHub: AgentHub; clock: Clock; logger: Logger }) {}

  /** The host's heartbeat as last read (by host name). */
  of(hostName: string): HaHeartbeat | undefined {
    return this.#beats.get(hostName);
  }

  /** When the last reading began. */
  get startedAt(): number {
    return this.#startedAt;
  }

  /** When the heartbeats were last read through (null: never). */
  get readAt(): number | null {
    return this.#readAt;
  }

  /**
   * Reads them again, unless they were read less than a second ago (`force`: now anyway);
   * `agentIds`: connection id → agent id.
   */
  async read(
    model: PlacementModel,
    agentIds: ReadonlyMap<string, string>,
    force: boolean,
  ): Promise<void> {
    const { agentHub, clock } = this.deps;
    const now = clock.now();
    if (!force && now - this.#startedAt < 1000) return;
    this.#startedAt = now;
    const roots = new Map<string, string[]>(); // root → agents that have it and answer
    for (const host of model.hosts) {
      if (!haOfHost(model, host).enabled) continue;
      const hostRoots = host.object.facts['storage.roots'];
      if (!Array.isArray(hostRoots)) continue;
      const agentId = host.connectionId ? agentIds.get(host.connectionId) : undefined;
      const silent = agentId ? agentHub.silentMs(agentId) : null;
      for (const root of hostRoots) {
        if (typeof root !== 'string') continue;
        const readers = roots.get(root) ?? [];
        if (agentId && silent !== null && silent < healthySilenceMs) readers.push(agentId);
        roots.set(root, readers);
      }
    }
    const beats = new Map<string, HaHeartbeat>();
    await Promise.all(
      [...roots].map(async ([root, readers]) => {
        for (const found of await this.#readRoot(root, readers))
          if ((beats.get(found.host)?.counter ?? -1) < found.counter) beats.set(found.host, found);
      }),
    );
    this.#beats = beats;
    this.#readAt = clock.now();
  }

  async #readRoot(root: string, readers: string[]): Promise<HaHeartbeat[]> {
    const { agentHub, logger } = this.deps;
    // The two peers heard most recently are asked at once, the first answer taken: one that is
    // being cut off right now must not hold the reading (and so the verdicts) back.
    const peers = readers
      .filter((agentId) => agentHub.link(agentId)?.supports('readHaHeartbeats'))
      .sort((a, b) => (agentHub.silentMs(a) ?? Infinity) - (agentHub.silentMs(b) ?? Infinity))
      .slice(0, 2);
    if (peers.length > 0) {
      try {
        return await Promise.any(
          peers.map((agentId) =>
            agentHub.link(agentId)!.call('readHaHeartbeats', [root], { timeoutMs: 1000 }),
          ),
        );
      } catch (error) {
        logger.debug({ err: error, root }, 'no peer could read the heartbeats');
      }
    }
    if (!existsSync(root)) return [];
    try {
      const { heartbeats, invalid } = await readHeartbeatDir(root);
      for (const bad of invalid)
        logger.warn({ root, ...bad }, 'a storage heartbeat file is not valid');
      return heartbeats;
    } catch (error) {
      logger.warn({ err: error, root }, 'reading storage heartbeats failed');
      return [];
    }
  }
}
