/**
 * Reads every present machine's sensors every `sensorSampleEveryMs` through
 * its BMC, at most `sensorConcurrency` BMCs at once, and writes what the
 * round read in one batch; prunes expired samples once an hour. A BMC that
 * fails is logged (once, until it answers again) and skipped; one that hangs
 * holds only its own machine (skipped by the next rounds while its request is
 * still out, until its connection's timeout ends it) and one of the slots,
 * never the round: a round waits at most one sampling period for its readings.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { requireFacet } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import { SamplingLoop } from '../metrics/sampling-loop.js';
import { isMachine } from './machine-links.js';
import { summarizeSensors, type SensorHistory, type SensorSample } from './sensor-history.js';

export interface SensorRound {
  /** Machines whose reading this round started. */
  started: number;
  /** Readings written (this round's and late ones of earlier rounds). */
  written: number;
  failed: number;
  /** Machines skipped because their previous reading is still out. */
  busy: number;
}

export class SensorSampler {
  readonly #loop: SamplingLoop;
  /** Machines whose reading is out. */
  readonly #inFlight = new Set<string>();
  /** Machines whose last reading failed (logged once until they answer again). */
  readonly #failing = new Set<string>();
  #pending: SensorSample[] = [];
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  #failed = 0;

  constructor(
    private readonly deps: {
      clock: Clock;
      history: SensorHistory;
      inventory: InventoryService;
      connections: ConnectionService;
      logger: Logger;
    },
  ) {
    this.#loop = new SamplingLoop({
      clock: deps.clock,
      logger: deps.logger,
      everyMs: () => deps.history.settings.sensorSampleEveryMs,
      sample: () => this.sampleOnce(),
      prune: () => deps.history.prune(),
      failure: 'sensor sampling failed',
      pacing: 'period apart',
    });
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
    await this.#flush().catch(() => 0);
  }

  /**
   * One round: starts a reading of every present machine whose previous one is not still out,
   * waits for them (at most `waitMs`), and writes every reading that came back.
   */
  async sampleOnce(waitMs = this.deps.history.settings.sensorSampleEveryMs): Promise<SensorRound> {
    const machines = this.deps.inventory.index
      .ofKind('host')
      .filter((host) => isMachine(host) && host.status === 'present' && host.connectionId);
    const readings: Array<Promise<void>> = [];
    let busy = 0;
    this.#failed = 0;
    for (const machine of machines) {
      if (this.#inFlight.has(machine.id)) {
        busy++;
        continue;
      }
      this.#inFlight.add(machine.id);
      readings.push(this.#read(machine));
    }
    const all = Promise.all(readings).then(() => undefined);
    // Stopping the sampler ends the wait too: stop() never waits for a hanging BMC.
    const patience = new AbortController();
    const signal = AbortSignal.any([patience.signal, this.#loop.stopped]);
    await Promise.race([all, this.deps.clock.sleep(waitMs, signal).catch(() => undefined)]);
    patience.abort();
    const failed = this.#failed;
    const written = await this.#flush();
    return { started: readings.length, written, failed, busy };
  }

  /** Never rejects: a failure is logged and counted. */
  async #read(machine: ManagedObject): Promise<void> {
    const { clock, connections, logger } = this.deps;
    await this.#acquire();
    try {
      const facet = requireFacet(
        connections.driver(machine.connectionId!),
        'machine',
        'read sensors',
      );
      const sensors = await facet.sensors(machine.externalId!);
      this.#pending.push(summarizeSensors(machine.id, clock.now(), sensors));
      if (this.#failing.delete(machine.id))
        logger.info({ machineId: machine.id }, "the machine's BMC answers sensor readings again");
    } catch (error) {
      this.#failed++;
      if (!this.#failing.has(machine.id)) {
        this.#failing.add(machine.id);
        logger.warn(
          { err: error, machineId: machine.id, machine: machine.name },
          "reading the machine's sensors failed; skipped until its BMC answers",
        );
      }
    } finally {
      this.#release();
      this.#inFlight.delete(machine.id);
    }
  }

  async #acquire(): Promise<void> {
    if (this.#active < this.deps.history.settings.sensorConcurrency) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    // The slot passes to the next reading waiting for one.
    if (next) next();
    else this.#active--;
  }

  async #flush(): Promise<number> {
    const samples = this.#pending;
    if (samples.length === 0) return 0;
    this.#pending = [];
    try {
      return await this.deps.history.record(samples);
    } catch (error) {
      // Keep them for the next round rather than lose them to a passing store error.
      this.#pending = samples.concat(this.#pending);
      throw error;
    }
  }
}
