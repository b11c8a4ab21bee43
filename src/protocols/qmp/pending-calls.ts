import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { JsonValue } from './messages.js';

interface PendingCall {
  command: string;
  resolve: (value: JsonValue) => void;
  reject: (error: ZenithError) => void;
  /** Aborted when the call settles: cancels its timeout sleep and its abort listener. */
  settled: AbortController;
}

/**
 * The reason given when a timer is cancelled because its call settled. A shared
 * constant: a bare abort() builds a DOMException with a stack trace on every
 * reply, which measurably slowed each round trip.
 */
export const SETTLED = Symbol('settled');

/**
 * Commands in flight, by id, each with its own timeout on the injected clock and
 * an optional caller's abort signal. Ids given up on (timed out or aborted) are
 * remembered so that QEMU's late reply is dropped, not taken for a protocol error.
 */
export class PendingCalls {
  readonly #clock: Clock;
  readonly #calls = new Map<string, PendingCall>();
  readonly #abandoned = new Set<string>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Registers a call; the returned promise settles on reply, timeout, abort or close. */
  add(id: string, command: string, timeoutMs: number, signal?: AbortSignal): Promise<JsonValue> {
    return new Promise<JsonValue>((resolve, reject) => {
      const settled = new AbortController();
      this.#calls.set(id, { command, resolve, reject, settled });
      if (timeoutMs > 0) {
        this.#clock.sleep(timeoutMs, settled.signal).then(
          () =>
            this.#abandon(
              id,
              new ZenithError(
                'QMP_TIMEOUT',
                `QEMU did not answer ${command} within ${timeoutMs} ms`,
                {
                  command,
                  timeoutMs,
                },
              ),
            ),
          () => {},
        );
      }
      if (signal) {
        const onAbort = () =>
          this.#abandon(
            id,
            signal.reason instanceof ZenithError
              ? signal.reason
              : new ZenithError('ZEN_TASK_CANCELLED', `${command} was abandoned by its caller`, {
                  command,
                }),
          );
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true, signal: settled.signal });
      }
    });
  }

  /**
   * Settles the call with this id from QEMU's reply. Returns false when no call
   * matches and the id was not one given up on (the stream is out of step).
   */
  settle(
    id: string,
    outcome: { value: JsonValue } | { error: (command: string) => ZenithError },
  ): boolean {
    const call = this.#calls.get(id);
    if (!call) return this.#abandoned.delete(id);
    this.#calls.delete(id);
    call.settled.abort(SETTLED);
    if ('value' in outcome) call.resolve(outcome.value);
    else call.reject(outcome.error(call.command));
    return true;
  }

  /** Rejects every call in flight (the connection is gone). */
  rejectAll(error: (command: string) => ZenithError): void {
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    this.#abandoned.clear();
    for (const call of calls) {
      call.settled.abort(SETTLED);
      call.reject(error(call.command));
    }
  }

  #abandon(id: string, error: ZenithError): void {
    const call = this.#calls.get(id);
    if (!call) return;
    this.#calls.delete(id);
    this.#abandoned.add(id);
    call.settled.abort(SETTLED);
    call.reject(error);
  }
}
