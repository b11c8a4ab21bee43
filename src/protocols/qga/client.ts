import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { QgaDecoder } from './decoder.js';
import { encodeQgaCommand, encodeQgaSync } from './encoder.js';
import type { FsFreezeStatus, JsonObject, JsonValue, QgaMessage } from './messages.js';

export interface QgaClientOptions {
  /** Time of the timeouts (tests pass a manual clock). */
  clock?: Clock;
  /** How long a command (and the sync before it) may take, unless the call says otherwise. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * A client of one guest agent over a stream the caller opened (the host side of the VM's
 * virtio-serial chardev). Commands go one at a time: QGA answers in order and carries no ids.
 * Before its first command, and after any command that was not answered in time, the client
 * syncs (`guest-sync-delimited`): it discards everything until the agent's 0xFF delimiter and the
 * answer echoing its random id, so a late answer to an old command is never taken for a new one's.
 * An agent that is not running in the guest answers nothing: every call then ends in QGA_TIMEOUT.
 */
export class QgaClient {
  readonly #socket: Duplex;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #decoder = new QgaDecoder();
  readonly #inbox: QgaMessage[] = [];
  #wake: (() => void) | null = null;
  #closed: ZenithError | null = null;
  #synced = false;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(socket: Duplex, options: QgaClientOptions = {}) {
    this.#socket = socket;
    this.#clock = options.clock ?? systemClock;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    socket.on('data', (chunk: Buffer) => {
      const { messages, error } = this.#decoder.push(chunk);
      this.#inbox.push(...messages);
      if (error) this.#end(error);
      this.#wake?.();
    });
    socket.on('error', (error: Error) =>
      this.#end(new ZenithError('QGA_CLOSED', `the guest agent channel failed: ${error.message}`)),
    );
    for (const event of ['end', 'close'])
      socket.on(event, () =>
        this.#end(new ZenithError('QGA_CLOSED', 'the guest agent channel closed')),
      );
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  /** Runs a command and answers its `return` value (QGA_COMMAND_FAILED when the agent refuses it). */
  execute(
    name: string,
    args?: JsonObject,
    options: { timeoutMs?: number } = {},
  ): Promise<JsonValue> {
    const run = this.#queue.then(() => this.#run(name, args, options.timeoutMs ?? this.#timeoutMs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** `guest-ping`: resolves once the agent answers. */
  async ping(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.execute('guest-ping', undefined, options);
  }

  /** `guest-fsfreeze-freeze`: freezes every freezable mounted file system; answers how many. */
  async freeze(options: { timeoutMs?: number } = {}): Promise<number> {
    return count(await this.execute('guest-fsfreeze-freeze', undefined, options), 'freeze');
  }

  /** `guest-fsfreeze-thaw`: thaws them; answers how many were thawed (0 when none was frozen). */
  async thaw(options: { timeoutMs?: number } = {}): Promise<number> {
    return count(await this.execute('guest-fsfreeze-thaw', undefined, options), 'thaw');
  }

  /** `guest-fsfreeze-status`. */
  async freezeStatus(options: { timeoutMs?: number } = {}): Promise<FsFreezeStatus> {
    const value = await this.execute('guest-fsfreeze-status', undefined, options);
    if (value !== 'thawed' && value !== 'frozen')
      throw new ZenithError(
        'QGA_PROTOCOL_ERROR',
        `the guest agent answered guest-fsfreeze-status with ${JSON.stringify(value)}`,
        { reason: 'unexpected-answer', command: 'guest-fsfreeze-status' },
      );
    return value;
  }

  close(): void {
    this.#end(new ZenithError('QGA_CLOSED', 'the guest agent client was closed'));
    this.#socket.destroy();
  }

  async #run(name: string, args: JsonObject | undefined, timeoutMs: number): Promise<JsonValue> {
    const deadline = this.#deadline(name, timeoutMs);
    try {
      if (!this.#synced) await this.#sync(deadline.signal);
      this.#send(encodeQgaCommand({ execute: name, ...(args ? { arguments: args } : {}) }));
      for (;;) {
        const message = await this.#next(deadline.signal);
        if (message.kind === 'delimiter') continue;
        if (message.kind === 'error')
          throw new ZenithError(
            'QGA_COMMAND_FAILED',
            `the guest agent refused ${name}: ${message.desc}`,
            { command: name, errorClass: message.errorClass, desc: message.desc },
          );
        return message.value;
      }
    } catch (error) {
      // Its answer may still come: the next command syncs first, so it is never taken for another's.
      this.#synced = false;
      throw error;
    } finally {
      deadline.done();
    }
  }

  async #sync(signal: AbortSignal): Promise<void> {
    const id = randomInt(1, 2 ** 31 - 1);
    this.#inbox.length = 0;
    this.#send(encodeQgaSync(id));
    let delimited = false;
    for (;;) {
      const message = await this.#next(signal);
      if (message.kind === 'delimiter') delimited = true;
      else if (delimited && message.kind === 'return' && message.value === id) break;
      else delimited = false;
    }
    this.#synced = true;
  }

  #send(bytes: Buffer): void {
    if (this.#closed) throw this.#closed;
    this.#socket.write(bytes);
  }

  async #next(signal: AbortSignal): Promise<QgaMessage> {
    for (;;) {
      const message = this.#inbox.shift();
      if (message) return message;
      if (this.#closed) throw this.#closed;
      if (signal.aborted) throw signal.reason as Error;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', wake);
          this.#wake = null;
          resolve();
        };
        this.#wake = wake;
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** A signal aborted with QGA_TIMEOUT after `timeoutMs` of the clock's time. */
  #deadline(command: string, timeoutMs: number): { signal: AbortSignal; done: () => void } {
    const timeout = new AbortController();
    const finished = new AbortController();
    this.#clock.sleep(timeoutMs, finished.signal).then(
      () =>
        timeout.abort(
          new ZenithError(
            'QGA_TIMEOUT',
            `the guest agent did not answer ${command} within ${timeoutMs} ms`,
            { command, timeoutMs },
          ),
        ),
      () => undefined,
    );
    return { signal: timeout.signal, done: () => finished.abort() };
  }

  #end(error: ZenithError): void {
    if (this.#closed) return;
    this.#closed = error;
    this.#wake?.();
  }
}

function count(value: JsonValue, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
    throw new ZenithError(
      'QGA_PROTOCOL_ERROR',
      `the guest agent answered ${what} with ${JSON.stringify(value)}, not a count`,
      { reason: 'unexpected-answer', command: `guest-fsfreeze-${what}` },
    );
  return value;
}
