/**
 * The pace of the high-availability checks (host failover, VM monitoring): a check runs every
 * tick while it has something to watch, and while it is idle it sleeps until a policy changes
 * (or a while), not every tick.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { PolicyService } from '../policy/policy-service.js';

export interface PolicyPacedLoopOptions {
  clock: Clock;
  logger: Logger;
  policies: PolicyService;
  tickMs: number;
  /** How long an idle check sleeps when no policy changes. */
  idleMs: number;
  /** Logged, with the error, when a check fails (the loop goes on). */
  failure: string;
  /** One check; answers whether it is idle (nothing to watch). */
  check: () => Promise<boolean>;
}

export class PolicyPacedLoop {
  readonly #abort = new AbortController();
  readonly #loop: Promise<void>;

  /** Starts checking at once. */
  constructor(options: PolicyPacedLoopOptions) {
    const signal = this.#abort.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        const changes = options.policies.changes;
        const idle = await options.check().catch((error: unknown) => {
          options.logger.warn({ err: error }, options.failure);
          return false;
        });
        await options.clock
          .sleep(idle ? options.idleMs : options.tickMs, AbortSignal.any([signal, changes]))
          .catch(() => undefined);
      }
    })();
  }

  /** Stops the loop; resolves once a check under way has finished. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }
}
