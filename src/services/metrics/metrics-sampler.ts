/**
 * Reads the counters of every running VM whose driver reports metrics (for
 * an agent's VMs: what its last heartbeat carried) every `sampleEveryMs`,
 * writes them in one batch, and prunes expired history once an hour. Time
 * comes from the injected clock, so tests move it by hand.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { HypervisorDriver } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { MetricHistory } from './metric-history.js';
import { SamplingLoop } from './sampling-loop.js';

export class MetricsSampler {
  readonly #loop: SamplingLoop;

  constructor(
    private readonly deps: {
      clock: Clock;
      history: MetricHistory;
      inventory: InventoryService;
      connections: ConnectionService;
      logger: Logger;
    },
  ) {
    this.#loop = new SamplingLoop({
      clock: deps.clock,
      logger: deps.logger,
      everyMs: () => deps.history.settings.sampleEveryMs,
      sample: () => this.sampleOnce(),
      prune: () => deps.history.prune(),
      failure: 'metrics sampling failed',
      pacing: 'period between',
    });
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
    await this.deps.history.flush().catch(() => 0);
  }

  /** One round: sample every running VM that has metrics; returns the samples taken. */
  async sampleOnce(): Promise<number> {
    const { inventory, connections, history } = this.deps;
    // Only connections whose driver reports metrics: with none, a round costs nothing.
    const drivers = new Map<string, HypervisorDriver>();
    for (const id of connections.connectedIds()) {
      try {
        const driver = connections.driver(id);
        if (driver.vmMetrics) drivers.set(id, driver);
      } catch {
        // disconnected in the meantime
      }
    }
    let taken = 0;
    if (drivers.size > 0)
      for (const vm of inventory.index.ofKind('vm')) {
        if (vm.status !== 'present' || !vm.connectionId || !vm.externalId) continue;
        if (vm.facts['power.state'] !== 'running') continue;
        const driver = drivers.get(vm.connectionId);
        if (!driver?.vmMetrics) continue;
        const metrics = await driver.vmMetrics(vm.externalId).catch(() => null);
        if (metrics && history.record(vm.id, metrics)) taken++;
      }
    await history.flush();
    return taken;
  }
}
