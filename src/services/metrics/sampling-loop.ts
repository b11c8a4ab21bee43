/**
 * The loop a sampler runs its rounds in until it is stopped: each round samples, then prunes
 * expired history once an hour; a round that fails is logged and the next one comes as usual.
 * Time comes from the injected clock, so tests move it by hand.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';

const pruneEveryMs = 3_600_000;

export interface SamplingLoopOptions {
  clock: Clock;
  logger: Logger;
  /** The period, read again before each wait (settings may change it). */
  everyMs: () => number;
  sample: () => Promise<unknown>;
  prune: () => Promise<unknown>;
  /** What the log says when a round fails. */
  failure: string;
  /**
   * `period apart`: a round at once, then each a period after the last one started (a round
   * that took longer than the period is followed at once). `period between`: the first round after
   * a period, then each a period after the last one ended.
   */
  pacing: 'period apart' | 'period between';
}

export class SamplingLoop {
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #lastPrune = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: SamplingLoopOptions) {}

  /** Aborted once the loop is told to stop: a round's own waits end with it. */
  get stopped(): AbortSignal {
    return this.#stop.signal;
  }

  start(): void {
    this.#loop ??= this.#rounds();
  }

  /** Ends the wait for the next round and waits for the round under way, if any. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #round(): Promise<void> {
    const { clock, logger } = this.options;
    try {
      await this.options.sample();
      if (clock.now() - this.#lastPrune >= pruneEveryMs) {
        this.#lastPrune = clock.now();
        await this.options.prune();
      }
    } catch (error) {
      logger.warn({ err: (error as Error).message }, this.options.failure);
    }
  }

  async #rounds(): Promise<void> {
    const { clock, everyMs, pacing } = this.options;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (pacing === 'period between') {
        try {
          await clock.sleep(everyMs(), signal);
        } catch {
          return; // stopped
        }
      }
      const started = clock.now();
      await this.#round();
      if (pacing === 'period apart') {
        try {
          await clock.sleep(Math.max(0, everyMs() - (clock.now() - started)), signal);
        } catch {
          return; // stopped
        }
      }
    }
  }
}
