/**
 * Runs the rebalancer on a schedule: every `settings.rebalance.everyMinutes`
 * of the global policies (re-read each round, so a policy change takes
 * effect at the next one); idle while no schedule is set. Time comes from the
 * injected clock, so tests move it by hand. Power management runs on the same
 * kind of schedule (`settings.powerManagement.everyMinutes`).
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { RebalanceScheduleSettings } from '../policy/policy-document.js';

/** How often to look again for a schedule while none is set. */
const idleCheckMs = 60_000;

export class RebalanceScheduler<S extends { everyMinutes: number } = RebalanceScheduleSettings> {
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly settings: () => S | undefined,
    private readonly run: (settings: S) => Promise<void>,
    private readonly logger: Logger,
    private readonly what = 'scheduled rebalancing',
  ) {}

  start(): void {
    this.#loop ??= this.#rounds();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #rounds(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const settings = this.settings();
      try {
        await this.clock.sleep(settings ? settings.everyMinutes * 60_000 : idleCheckMs, signal);
      } catch {
        return; // stopped
      }
      const current = this.settings();
      if (!current) continue;
      try {
        await this.run(current);
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, `${this.what} failed`);
      }
    }
  }
}
