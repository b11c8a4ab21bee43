import type { QmpEventName, QmpTypedEvent } from './events.js';
import type { QmpEventMessage } from './messages.js';

export type Unsubscribe = () => void;

/** Most events a lagging `events()` reader may leave unread before the oldest are dropped. */
const DEFAULT_ITERATOR_BUFFER = 10_000;

interface Reader {
  queue: QmpEventMessage[];
  wake: (() => void) | undefined;
  limit: number;
  dropped: number;
}

/**
 * Fans QMP events out to listeners and async iterators. A listener that throws
 * does not disturb the connection or other listeners; its error is re-thrown on
 * its own (a bug in the caller stays visible).
 */
export class QmpEventHub {
  readonly #listeners = new Set<(event: QmpEventMessage) => void>();
  readonly #readers = new Set<Reader>();
  #ended = false;

  publish(event: QmpEventMessage): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    for (const reader of this.#readers) {
      if (reader.queue.length >= reader.limit) {
        reader.queue.shift();
        reader.dropped += 1;
      }
      reader.queue.push(event);
      reader.wake?.();
    }
  }

  /** Ends every iterator; listeners are dropped. */
  end(): void {
    this.#ended = true;
    this.#listeners.clear();
    for (const reader of this.#readers) reader.wake?.();
  }

  onAny(listener: (event: QmpEventMessage) => void): Unsubscribe {
    if (this.#ended) return () => {};
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  on<K extends QmpEventName>(name: K, listener: (event: QmpTypedEvent<K>) => void): Unsubscribe {
    return this.onAny((event) => {
      if (event.event === name) listener(event as QmpTypedEvent<K>);
    });
  }

  /**
   * Every event from now on, in order, until the connection closes (then the
   * loop ends) or the signal aborts. Subscribes at once, before the first
   * `next()`, so no event is lost between creating the iterator and reading it.
   */
  iterate(
    options: { signal?: AbortSignal; bufferSize?: number } = {},
  ): AsyncGenerator<QmpEventMessage, void, undefined> {
    const reader: Reader = {
      queue: [],
      wake: undefined,
      limit: options.bufferSize ?? DEFAULT_ITERATOR_BUFFER,
      dropped: 0,
    };
    this.#readers.add(reader);
    return this.#drain(reader, options.signal);
  }

  async *#drain(
    reader: Reader,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<QmpEventMessage, void, undefined> {
    const onAbort = () => reader.wake?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const next = reader.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#ended || signal?.aborted) return;
        await new Promise<void>((resolve) => {
          reader.wake = resolve;
        });
        reader.wake = undefined;
      }
    } finally {
      this.#readers.delete(reader);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
