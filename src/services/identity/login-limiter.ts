/**
 * Failed-login throttling per user name and per client address: after five failures within fifteen
 * minutes, further attempts are refused for a period that doubles with every further failure (capped
 * at fifteen minutes).
 *
 * An attempt is reserved before its password is verified, and counts against the five until it is
 * judged: requests sent at once cannot all pass the check while the first ones are still hashing.
 * A key may also have only a few attempts in flight at a time.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';

const window = 15 * 60_000;
const freeFailures = 5;
const baseLockMs = 30_000;
const maxLockMs = 15 * 60_000;
/** Attempts being verified at once: per user name, and per address (several people behind one NAT). */
const maxInFlight = { user: 2, addr: freeFailures } as const;

interface KeyRecord {
  failures: number[];
  lockedUntil: number;
  inFlight: number;
}

/** One reserved attempt: judged once (a failure, a success) or released (neither, e.g. an outage). */
export interface LoginAttempt {
  fail(): void;
  /** Success clears the failures of these keys (the user's, not the address's). */
  succeed(clearedKeys: string[]): void;
  release(): void;
}

export class LoginLimiter {
  readonly #records = new Map<string, KeyRecord>();

  constructor(private readonly clock: Clock) {}

  /**
   * Reserves an attempt on every key (`user:…`, `addr:…`), or throws ZEN_RATE_LIMITED: a key is
   * locked, has as many attempts in flight as it may, or has no failure left to spend on this one.
   */
  begin(keys: string[]): LoginAttempt {
    const now = this.clock.now();
    for (const key of keys) {
      const record = this.#records.get(key);
      if (!record) continue;
      record.failures = record.failures.filter((t) => t > now - window);
      if (record.lockedUntil > now) throw limited(Math.ceil((record.lockedUntil - now) / 1000));
      // Failures left to spend bound the attempts in flight; past the five (a lock that ran out), one
      // at a time, whose failure locks again.
      const left = Math.max(1, freeFailures - record.failures.length);
      const cap = key.startsWith('user:') ? maxInFlight.user : maxInFlight.addr;
      if (record.inFlight >= Math.min(cap, left)) throw limited(1);
    }
    for (const key of keys) {
      const record = this.#records.get(key) ?? { failures: [], lockedUntil: 0, inFlight: 0 };
      record.inFlight++;
      this.#records.set(key, record);
    }
    let settled = false;
    const settle = (judge: (record: KeyRecord, key: string) => void) => {
      if (settled) return;
      settled = true;
      for (const key of keys) {
        const record = this.#records.get(key);
        if (!record) continue;
        record.inFlight--;
        judge(record, key);
      }
      if (this.#records.size > 100_000) this.#prune(this.clock.now());
    };
    return {
      fail: () =>
        settle((record) => {
          const at = this.clock.now();
          record.failures = record.failures.filter((t) => t > at - window);
          record.failures.push(at);
          const over = record.failures.length - freeFailures;
          if (over >= 0) record.lockedUntil = at + Math.min(maxLockMs, baseLockMs * 2 ** over);
        }),
      succeed: (clearedKeys) =>
        settle((record, key) => {
          if (clearedKeys.includes(key)) {
            record.failures = [];
            record.lockedUntil = 0;
          }
        }),
      release: () => settle(() => undefined),
    };
  }

  #prune(now: number): void {
    for (const [key, record] of this.#records)
      if (
        record.inFlight === 0 &&
        record.lockedUntil < now &&
        record.failures.every((t) => t < now - window)
      )
        this.#records.delete(key);
  }
}

function limited(retryAfterSeconds: number): ZenithError {
  return new ZenithError(
    'ZEN_RATE_LIMITED',
    `too many failed or concurrent logins; try again in ${retryAfterSeconds} s`,
    { retryAfterSeconds },
  );
}
