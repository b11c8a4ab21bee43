/**
 * Calls waiting for their reply, keyed by serial: time limits and cancellation
 * (from the connection's Clock), decoding of the reply or of remote_error, and
 * serials given up on, whose late replies are dropped instead of being taken
 * for protocol errors.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { decodeXdr } from '../xdr/xdr-types.js';
import { MESSAGE_STATUS, protocolError, type Packet } from './packet.js';
import type { CallOptions, RemoteProcedure } from './procedure.js';
import { libvirtError, remoteError } from './remote-error.js';

interface PendingCall {
  procedure: RemoteProcedure<unknown, unknown>;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  cancelTimer: (() => void) | undefined;
}

/** Serials given up on are remembered this long (a bounded set: oldest forgotten first). */
const ABANDONED_MAX = 4096;

export class PendingCalls {
  readonly #clock: Clock;
  readonly #calls = new Map<number, PendingCall>();
  readonly #abandoned = new Set<number>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#calls.size;
  }

  /** Registers a call before its packet is written; the promise settles with its reply. */
  add<R>(serial: number, procedure: RemoteProcedure<unknown, R>, options: CallOptions): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const pending: PendingCall = {
        procedure,
        resolve: resolve as (value: unknown) => void,
        reject,
        cancelTimer: undefined,
      };
      const giveUp = (error: Error) => {
        if (this.#calls.get(serial) !== pending) return;
        this.#calls.delete(serial);
        this.forget(serial);
        pending.cancelTimer?.();
        reject(error);
      };
      const { timeoutMs, signal } = options;
      if (timeoutMs !== undefined || signal) {
        const timer = new AbortController();
        pending.cancelTimer = () => timer.abort();
        if (timeoutMs !== undefined) {
          this.#clock.sleep(timeoutMs, timer.signal).then(
            () =>
              giveUp(
                new ZenithError(
                  'LIBVIRT_RPC_TIMEOUT',
                  `${procedure.name} got no reply within ${timeoutMs} ms`,
                  {
                    procedure: procedure.name,
                    timeoutMs,
                  },
                ),
              ),
            () => undefined,
          );
        }
        if (signal) {
          const onAbort = () =>
            giveUp(signal.reason instanceof Error ? signal.reason : new Error('call aborted'));
          if (signal.aborted) {
            this.#calls.set(serial, pending);
            onAbort();
            return;
          }
          signal.addEventListener('abort', onAbort, { once: true });
          timer.signal.addEventListener(
            'abort',
            () => signal.removeEventListener('abort', onAbort),
            {
              once: true,
            },
          );
        }
      }
      this.#calls.set(serial, pending);
    });
  }

  /** Marks a serial whose later packets are to be dropped silently. */
  forget(serial: number): void {
    this.#abandoned.add(serial);
    if (this.#abandoned.size > ABANDONED_MAX) {
      const oldest = this.#abandoned.values().next().value;
      if (oldest !== undefined) this.#abandoned.delete(oldest);
    }
  }

  isForgotten(serial: number): boolean {
    return this.#abandoned.has(serial);
  }

  /** Settles the call a REPLY belongs to; a reply for a serial nobody waits for is a protocol error. */
  settle(packet: Packet): void {
    const { serial, status } = packet.header;
    const pending = this.#calls.get(serial);
    if (!pending) {
      if (this.#abandoned.delete(serial)) return;
      throw protocolError(`reply for unknown serial ${serial}`, {
        serial,
        procedure: packet.header.procedure,
      });
    }
    this.#calls.delete(serial);
    pending.cancelTimer?.();
    if (status === MESSAGE_STATUS.ok) {
      let value: unknown;
      try {
        value = decodeXdr(pending.procedure.ret, packet.payload);
      } catch (error) {
        // The framing is intact: only this call failed.
        pending.reject(error as Error);
        return;
      }
      pending.resolve(value);
      return;
    }
    if (status === MESSAGE_STATUS.error) {
      let error: ZenithError;
      try {
        error = libvirtError(decodeXdr(remoteError, packet.payload), pending.procedure.name);
      } catch (decodeFailure) {
        error = decodeFailure as ZenithError;
      }
      pending.reject(error);
      return;
    }
    pending.reject(protocolError(`reply with status ${status}`, { serial, status }));
  }

  /** Fails every waiting call (the connection is gone). */
  failAll(error: Error): void {
    for (const [serial, pending] of this.#calls) {
      this.#calls.delete(serial);
      pending.cancelTimer?.();
      pending.reject(error);
    }
  }
}
