/**
 * Failed-login throttling per user name and per client address: after five
 * failures within fifteen minutes, further attempts are refused for a period
 * that doubles with every further failure (capped at fifteen minutes).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';

const window = 15 * 60_000;
const freeFailures = 5;
const baseLockMs = 30_000;
const maxLockMs = 15 * 60_000;

interface Record {
  failures: number[];
  lockedUntil: number;
}

export class LoginLimiter {
  readonly #records = new Map<string, Record>();

  constructor(private readonly clock: Clock) {}

  /** Throws ZEN_RATE_LIMITED while any of the keys is locked. */
  check(keys: string[]): void {
    const now = this.clock.now();
    for (const key of keys) {
      const record = this.#records.get(key);
      if (record && record.lockedUntil > now) {
        const retryAfterSeconds = Math.ceil((record.lockedUntil - now) / 1000);
        throw new ZenithError(
          'ZEN_RATE_LIMITED',
          `too many failed logins; try again in ${retryAfterSeconds} s`,
          { retryAfterSeconds },
        );
      }
    }
  }

  fail(keys: string[]): void {
    const now = this.clock.now();
    for (const key of keys) {
      const record = this.#records.get(key) ?? { failures: [], lockedUntil: 0 };
      record.failures = record.failures.filter((t) => t > now - window);
      record.failures.push(now);
      const over = record.failures.length - freeFailures;
      if (over >= 0) record.lockedUntil = now + Math.min(maxLockMs, baseLockMs * 2 ** over);
      this.#records.set(key, record);
    }
    if (this.#records.size > 100_000) this.#prune(now);
  }

  succeed(keys: string[]): void {
    for (const key of keys) this.#records.delete(key);
  }

  #prune(now: number): void {
    for (const [key, record] of this.#records)
      if (record.lockedUntil < now && record.failures.every((t) => t < now - window))
        this.#records.delete(key);
  }
}
