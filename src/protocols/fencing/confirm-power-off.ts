/**
 * Fencing at the protocol level: power a machine off through its BMC and
 * return only once the BMC reads the power state as off. A BMC that accepts
 * the request and keeps the machine on, one that stops answering, or one whose
 * answers fail all end in BMC_FENCE_UNCONFIRMED at the deadline: high
 * availability restarts a failed host's VMs elsewhere only after this returns,
 * so it never reports an off it did not read.
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError, isZenithError } from '../../core/errors.js';

export interface FenceTarget {
  /** Asks for an immediate (hard) power-off. */
  powerOff(): Promise<void>;
  /** The power state the BMC reports now: 'off' is the only answer that confirms. */
  readPower(): Promise<'on' | 'off' | 'unknown'>;
}

export interface FenceOptions {
  /** Give up (and fail) after this long, even in the middle of a call that hangs; default 60 s. */
  deadlineMs?: number;
  /** Pause between reads of the power state; default 1 s. */
  pollIntervalMs?: number;
  /** Ask for power-off again after this many reads that still say on; default 5. */
  repeatOffAfterPolls?: number;
  clock?: Clock;
}

export interface FenceResult {
  /** From the first request to the read that confirmed off. */
  elapsedMs: number;
  offRequests: number;
  polls: number;
}

export async function confirmPowerOff(
  target: FenceTarget,
  options: FenceOptions = {},
): Promise<FenceResult> {
  const clock = options.clock ?? systemClock;
  const deadlineMs = options.deadlineMs ?? 60_000;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const repeatAfter = options.repeatOffAfterPolls ?? 5;
  const start = clock.now();
  let offRequests = 0;
  let offAccepted = false;
  let polls = 0;
  let pollsSinceRequest = 0;
  let lastState: 'on' | 'off' | 'unknown' | 'unread' = 'unread';
  let lastError: ZenithError | undefined;
  let hungIn: 'powerOff' | 'readPower' | undefined;
  // A call that hangs past the deadline must not hold the fence: each is raced against the time left.
  const deadline = new AbortController();
  const expiry = clock.sleep(deadlineMs, deadline.signal).then(
    () => 'expired' as const,
    () => 'cancelled' as const,
  );
  const withinDeadline = async <T>(call: () => Promise<T>): Promise<T | 'expired'> => {
    const pending = call();
    pending.catch(() => undefined); // its failure after the deadline no longer matters
    const winner = await Promise.race([pending, expiry]);
    return winner === 'cancelled' ? pending : winner;
  };
  try {
    for (;;) {
      if (!offAccepted || pollsSinceRequest >= repeatAfter) {
        offRequests += 1;
        pollsSinceRequest = 0;
        try {
          if ((await withinDeadline(() => target.powerOff())) === 'expired') {
            hungIn = 'powerOff';
            break;
          }
          offAccepted = true;
        } catch (error) {
          lastError = asZenithError(error);
        }
      }
      if (offAccepted) {
        polls += 1;
        pollsSinceRequest += 1;
        try {
          const state = await withinDeadline(() => target.readPower());
          if (state === 'expired') {
            hungIn = 'readPower';
            break;
          }
          lastState = state;
          if (lastState === 'off') return { elapsedMs: clock.now() - start, offRequests, polls };
        } catch (error) {
          lastError = asZenithError(error);
          lastState = 'unknown';
        }
      }
      if (clock.now() - start + pollIntervalMs > deadlineMs) break;
      await clock.sleep(pollIntervalMs);
    }
  } finally {
    deadline.abort();
  }
  throw new ZenithError(
    'BMC_FENCE_UNCONFIRMED',
    `the machine was not confirmed off within ${deadlineMs} ms (${
      offAccepted ? `power state last read ${lastState}` : 'the BMC did not accept the power-off'
    })`,
    {
      deadlineMs,
      offRequests,
      offAccepted,
      polls,
      lastState,
      ...(hungIn ? { unansweredAtDeadline: hungIn } : {}),
      ...(lastError ? { lastError: { code: lastError.code, message: lastError.message } } : {}),
    },
    lastError ? { cause: lastError } : undefined,
  );
}

function asZenithError(error: unknown): ZenithError {
  if (isZenithError(error)) return error;
  return new ZenithError('ZEN_INTERNAL', String(error));
}
