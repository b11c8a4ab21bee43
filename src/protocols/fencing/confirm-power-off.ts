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
  /** Give up (and fail) after this long; default 60 s. */
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
  for (;;) {
    if (!offAccepted || pollsSinceRequest >= repeatAfter) {
      offRequests += 1;
      pollsSinceRequest = 0;
      try {
        await target.powerOff();
        offAccepted = true;
      } catch (error) {
        lastError = asZenithError(error);
      }
    }
    if (offAccepted) {
      polls += 1;
      pollsSinceRequest += 1;
      try {
        lastState = await target.readPower();
        if (lastState === 'off') return { elapsedMs: clock.now() - start, offRequests, polls };
      } catch (error) {
        lastError = asZenithError(error);
        lastState = 'unknown';
      }
    }
    if (clock.now() - start + pollIntervalMs > deadlineMs)
      throw new ZenithError(
        'BMC_FENCE_UNCONFIRMED',
        `the machine was not confirmed off within ${deadlineMs} ms (${
          offAccepted
            ? `power state last read ${lastState}`
            : 'the BMC did not accept the power-off'
        })`,
        {
          deadlineMs,
          offRequests,
          offAccepted,
          polls,
          lastState,
          ...(lastError ? { lastError: { code: lastError.code, message: lastError.message } } : {}),
        },
        lastError ? { cause: lastError } : undefined,
      );
    await clock.sleep(pollIntervalMs);
  }
}

function asZenithError(error: unknown): ZenithError {
  if (isZenithError(error)) return error;
  return new ZenithError('ZEN_INTERNAL', String(error));
}
