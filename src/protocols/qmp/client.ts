import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { QmpArgs, QmpCommandName, QmpResult } from './commands.js';
import { QmpDecoder } from './decoder.js';
import { encodeCommand } from './encoder.js';
import { QmpEventHub, type Unsubscribe } from './event-hub.js';
import { PendingCalls, SETTLED } from './pending-calls.js';
import type { QmpEventName, QmpTypedEvent } from './events.js';
import type {
  JsonObject,
  JsonValue,
  QmpEventMessage,
  QmpGreeting,
  QmpMessage,
} from './messages.js';

/**
 * connecting: transport open, waiting for QEMU's greeting;
 * negotiating: `qmp_capabilities` sent; ready: commands accepted;
 * closed: final, every pending call was rejected.
 */
export type QmpConnectionState = 'connecting' | 'negotiating' | 'ready' | 'closed';

export interface QmpClientOptions {
  /** Source of time for every timeout (tests pass a ManualClock). */
  clock?: Clock;
  /** Default limit for one command; 0 disables it. Default 30 s. */
  commandTimeoutMs?: number;
  /** Limit for the greeting plus negotiation. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Longest line accepted from QEMU. Default 16 MiB. */
  maxLineBytes?: number;
  /** Enable out-of-band execution when QEMU offers it. Default true. */
  enableOob?: boolean;
  /** Told of every state change from the start (`open` resolves only once ready). */
  onStateChange?: (state: QmpConnectionState) => void;
}

export interface QmpExecuteOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Send as `exec-oob`: answered out of order, only for commands QEMU allows out of band. */
  oob?: boolean;
}

type ExecuteRest<K extends QmpCommandName> =
  Record<string, never> extends QmpArgs<K>
    ? [args?: QmpArgs<K>, options?: QmpExecuteOptions]
    : [args: QmpArgs<K>, options?: QmpExecuteOptions];

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A QMP client over any byte stream (unix socket, TCP, a test pair). Many
 * commands may be in flight; replies are matched by id. Use `QmpClient.open`,
 * which resolves once the connection is ready.
 */
export class QmpClient {
  readonly #stream: Duplex;
  readonly #clock: Clock;
  readonly #options: QmpClientOptions;
  readonly #decoder: QmpDecoder;
  readonly #hub = new QmpEventHub();
  readonly #pending: PendingCalls;
  readonly #stateListeners = new Set<(state: QmpConnectionState) => void>();
  #state: QmpConnectionState = 'connecting';
  #greeting: QmpGreeting | undefined;
  #onGreeting: ((greeting: QmpGreeting) => void) | undefined;
  #enabled: string[] = [];
  #nextId = 1;
  #closeReason: ZenithError | undefined;
  readonly #closed: Promise<void>;
  #markClosed!: () => void;

  private constructor(stream: Duplex, options: QmpClientOptions) {
    this.#stream = stream;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#pending = new PendingCalls(this.#clock);
    this.#decoder = new QmpDecoder(
      options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes },
    );
    if (options.onStateChange) this.#stateListeners.add(options.onStateChange);
    this.#closed = new Promise((resolve) => {
      this.#markClosed = resolve;
    });
    stream.on('data', (chunk: Buffer | string) => this.#receive(chunk));
    stream.on('error', (error: Error) =>
      this.#shutdown(closedError('the QMP stream failed', error)),
    );
    stream.on('end', () => this.#shutdown(closedError('QEMU closed the QMP connection')));
    stream.on('close', () => this.#shutdown(closedError('QEMU closed the QMP connection')));
  }

  /**
   * Waits for the greeting, negotiates capabilities (enabling `oob` when offered)
   * and resolves with a ready client. On failure the stream is destroyed.
   */
  static async open(stream: Duplex, options: QmpClientOptions = {}): Promise<QmpClient> {
    const client = new QmpClient(stream, options);
    await client.#handshake();
    return client;
  }

  get state(): QmpConnectionState {
    return this.#state;
  }

  /** QEMU's greeting: its version and the capabilities it offered. */
  get greeting(): QmpGreeting {
    if (!this.#greeting) throw new ZenithError('ZEN_INTERNAL', 'QMP greeting not received yet');
    return this.#greeting;
  }

  /** Capabilities enabled on this connection. */
  get capabilities(): readonly string[] {
    return this.#enabled;
  }

  /** Why the connection closed (undefined while open). */
  get closeReason(): ZenithError | undefined {
    return this.#closeReason;
  }

  /** Resolves once the connection is closed, for whatever reason. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  onStateChange(listener: (state: QmpConnectionState) => void): Unsubscribe {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Runs a known command with typed arguments and result. */
  execute<K extends QmpCommandName>(name: K, ...rest: ExecuteRest<K>): Promise<QmpResult<K>> {
    const [args, options] = rest;
    return this.executeRaw(name, args as JsonObject | undefined, options) as Promise<QmpResult<K>>;
  }

  /** Runs any command by name; the result is QEMU's JSON as sent. */
  executeRaw(name: string, args?: JsonObject, options: QmpExecuteOptions = {}): Promise<JsonValue> {
    if (
      this.#state !== 'ready' &&
      !(this.#state === 'negotiating' && name === 'qmp_capabilities')
    ) {
      const reason = this.#closeReason;
      return Promise.reject(
        this.#isClosed() && reason
          ? closedError(`QMP connection closed; ${name} not sent`, reason, name)
          : new ZenithError('QMP_CLOSED', `QMP connection is ${this.#state}; ${name} not sent`, {
              command: name,
              state: this.#state,
            }),
      );
    }
    if (options.signal?.aborted) {
      // Not sent at all: the caller gave up before it started.
      return this.#pending.add(`z${this.#nextId++}`, name, 0, options.signal);
    }
    const id = `z${this.#nextId++}`;
    const timeoutMs =
      options.timeoutMs ?? this.#options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const reply = this.#pending.add(id, name, timeoutMs, options.signal);
    this.#stream.write(encodeCommand({ execute: name, arguments: args, id, oob: options.oob }));
    return reply;
  }

  /** Calls `listener` for every event of this name until unsubscribed or closed. */
  on<K extends QmpEventName>(name: K, listener: (event: QmpTypedEvent<K>) => void): Unsubscribe {
    return this.#hub.on(name, listener);
  }

  /** Calls `listener` for every event, known or not. */
  onEvent(listener: (event: QmpEventMessage) => void): Unsubscribe {
    return this.#hub.onAny(listener);
  }

  /** Every event from now on as an async iterable; ends when the connection closes. */
  events(
    options: { signal?: AbortSignal; bufferSize?: number } = {},
  ): AsyncGenerator<QmpEventMessage, void, undefined> {
    return this.#hub.iterate(options);
  }

  /**
   * Resolves with the next event of this name that matches `predicate`. Subscribes
   * at once: call it before the command that causes the event.
   */
  waitForEvent<K extends QmpEventName>(
    name: K,
    options: { predicate?: (event: QmpTypedEvent<K>) => boolean; timeoutMs?: number } = {},
  ): Promise<QmpTypedEvent<K>> {
    return new Promise((resolve, reject) => {
      const done = new AbortController();
      const finish = (settleWith: () => void) => {
        unsubscribe();
        unwatchState();
        done.abort(SETTLED);
        settleWith();
      };
      const unsubscribe = this.#hub.on(name, (event) => {
        if (!options.predicate || options.predicate(event)) finish(() => resolve(event));
      });
      const onClosed = () =>
        finish(() =>
          reject(closedError(`QMP connection closed while waiting for ${name}`, this.#closeReason)),
        );
      if (this.#isClosed()) return onClosed();
      const unwatchState = this.onStateChange((state) => {
        if (state === 'closed') onClosed();
      });
      const timeoutMs =
        options.timeoutMs ?? this.#options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
      this.#clock.sleep(timeoutMs, done.signal).then(
        () =>
          finish(() =>
            reject(
              new ZenithError('QMP_TIMEOUT', `no ${name} event within ${timeoutMs} ms`, {
                event: name,
                timeoutMs,
              }),
            ),
          ),
        () => {},
      );
    });
  }

  /** Closes the connection; pending calls are rejected with QMP_CLOSED. Idempotent. */
  async close(): Promise<void> {
    this.#shutdown(
      new ZenithError('QMP_CLOSED', 'the QMP client was closed', { reason: 'client-closed' }),
    );
    await this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #handshake(): Promise<void> {
    const limit = this.#options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const timer = new AbortController();
    this.#clock.sleep(limit, timer.signal).then(
      () =>
        this.#shutdown(
          new ZenithError('QMP_CONNECT_FAILED', `QMP handshake did not finish within ${limit} ms`, {
            reason: 'handshake-timeout',
            state: this.#state,
            timeoutMs: limit,
          }),
        ),
      () => {},
    );
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        this.#onGreeting = resolve;
        this.#closed.then(() => reject(this.#handshakeFailure()), reject);
      });
      this.#setState('negotiating');
      const enable =
        greeting.capabilities.includes('oob') && this.#options.enableOob !== false ? ['oob'] : [];
      try {
        await this.executeRaw('qmp_capabilities', enable.length > 0 ? { enable } : undefined, {
          timeoutMs: 0,
        });
      } catch (error) {
        if (this.#isClosed()) throw this.#handshakeFailure();
        this.#shutdown(error as ZenithError);
        throw error;
      }
      this.#enabled = enable;
      this.#setState('ready');
    } finally {
      timer.abort(SETTLED);
    }
  }

  /** The error `open` reports: protocol and connect errors as they are, a plain close as a failed connect. */
  #handshakeFailure(): ZenithError {
    const reason = this.#closeReason;
    if (reason && reason.code !== 'QMP_CLOSED') return reason;
    return new ZenithError(
      'QMP_CONNECT_FAILED',
      'QEMU closed the QMP connection during the handshake',
      {
        reason: 'closed-during-handshake',
      },
      { cause: reason },
    );
  }

  #receive(chunk: Buffer | string): void {
    if (this.#isClosed()) return;
    const { messages, error } = this.#decoder.push(
      typeof chunk === 'string' ? Buffer.from(chunk) : chunk,
    );
    for (const message of messages) {
      this.#dispatch(message);
      if (this.#isClosed()) return;
    }
    if (error) this.#shutdown(error);
  }

  #dispatch(message: QmpMessage): void {
    if (message.kind === 'greeting') {
      if (this.#greeting) return this.#shutdown(protocolError('a second greeting arrived'));
      this.#greeting = message;
      this.#onGreeting?.(message);
      return;
    }
    if (!this.#greeting)
      return this.#shutdown(protocolError(`a ${message.kind} arrived before the greeting`));
    if (message.kind === 'event') return this.#hub.publish(message);
    const id = typeof message.id === 'string' ? message.id : undefined;
    const matched =
      id !== undefined &&
      this.#pending.settle(
        id,
        message.kind === 'return'
          ? { value: message.value }
          : {
              error: (command) =>
                new ZenithError('QMP_COMMAND_FAILED', `QEMU refused ${command}: ${message.desc}`, {
                  class: message.errorClass,
                  desc: message.desc,
                  command,
                }),
            },
      );
    // Every command this client sends carries an id, so an unmatched reply means the stream is out of step.
    if (!matched) {
      this.#shutdown(
        protocolError('a reply matches no command in flight', { id: message.id ?? null }),
      );
    }
  }

  /** A method, not a comparison, so TypeScript does not narrow the state across calls that change it. */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #setState(state: QmpConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) listener(state);
  }

  /** The one way to closed: rejects pending calls, ends event readers, releases the stream. */
  #shutdown(reason: ZenithError): void {
    if (this.#isClosed()) return;
    this.#closeReason = reason;
    this.#setState('closed');
    this.#pending.rejectAll((command) =>
      reason.code === 'QMP_CLOSED' ? closedError(reason.message, reason, command) : reason,
    );
    this.#hub.end();
    this.#stateListeners.clear();
    if (this.#stream.destroyed) {
      this.#markClosed();
    } else {
      this.#stream.once('close', () => this.#markClosed());
      this.#stream.destroy();
    }
  }
}

function closedError(message: string, cause?: Error, command?: string): ZenithError {
  const details: Record<string, unknown> = {};
  if (command) details.command = command;
  if (cause instanceof ZenithError)
    Object.assign(details, cause.details, command ? { command } : {});
  else if (cause) details.reason = cause.message;
  return new ZenithError('QMP_CLOSED', message, details, { cause });
}

function protocolError(reason: string, extra: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('QMP_PROTOCOL_ERROR', `QEMU sent invalid QMP: ${reason}`, {
    reason,
    ...extra,
  });
}
