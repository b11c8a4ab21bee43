/**
 * The watch() stream of a driver: deltas pushed by the driver, read by any
 * number of watchers. A watcher is registered when watch() is called, so no
 * change between that call and discover() is lost. Generic over the delta's
 * type: the agent hub feeds the agent channel's deltas through one too.
 */
import type { InventoryDelta } from './driver.js';

interface Watcher<Delta> {
  push(delta: Delta): void;
  wake(): void;
  backlog(): number;
}

export class DeltaFeed<Delta = InventoryDelta> {
  readonly #watchers = new Set<Watcher<Delta>>();
  #closed = false;

  push(delta: Delta): void {
    for (const watcher of this.#watchers) watcher.push(delta);
  }

  /** Deltas pushed but not yet taken by every watcher. */
  get backlog(): number {
    let total = 0;
    for (const watcher of this.#watchers) total += watcher.backlog();
    return total;
  }

  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.wake();
    this.#watchers.clear();
  }

  watch(signal: AbortSignal): AsyncIterable<Delta> {
    const queue: Delta[] = [];
    let wake: (() => void) | undefined;
    const onAbort = () => wake?.();
    const watcher: Watcher<Delta> = {
      push: (delta) => {
        queue.push(delta);
        wake?.();
      },
      wake: onAbort,
      backlog: () => queue.length,
    };
    this.#watchers.add(watcher);
    signal.addEventListener('abort', onAbort);
    const isOver = () => signal.aborted || this.#closed;
    const cleanUp = () => {
      this.#watchers.delete(watcher);
      signal.removeEventListener('abort', onAbort);
    };
    return {
      async *[Symbol.asyncIterator]() {
        try {
          while (!isOver()) {
            const next = queue.shift();
            if (next) {
              yield next;
              continue;
            }
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
        } finally {
          cleanUp();
        }
      },
    };
  }
}
