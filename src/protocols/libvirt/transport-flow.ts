/**
 * Writing to and pausing the connection's transport: writes report whether the
 * transport's buffer is full, waiters are told when it drains, and reading is
 * paused while any stream's reader is behind (resumed when none is).
 */
import type { Duplex } from 'node:stream';

export class TransportFlow {
  readonly #transport: Duplex;
  readonly #pausedBy = new Set<object>();
  #closed = false;
  #corked = false;

  constructor(transport: Duplex) {
    this.#transport = transport;
  }

  get readingPaused(): boolean {
    return this.#pausedBy.size > 0;
  }

  /**
   * Writes a packet; false when the transport's buffer is full (wait for drain).
   * Packets written in the same tick leave together (corked, then one vectored
   * write), so many calls in flight cost one system call, not one each.
   */
  write(packet: Buffer): boolean {
    if (this.#closed || this.#transport.destroyed) return true;
    if (!this.#corked) {
      this.#corked = true;
      this.#transport.cork();
      process.nextTick(() => {
        this.#corked = false;
        if (!this.#transport.destroyed) this.#transport.uncork();
      });
    }
    return this.#transport.write(packet);
  }

  /** Resolves when the transport can take more, rejects with `closedError()` if it closes first. */
  waitForDrain(closedError: () => Error): Promise<void> {
    const transport = this.#transport;
    return new Promise<void>((resolve, reject) => {
      if (this.#closed || transport.destroyed) {
        reject(closedError());
        return;
      }
      if (!transport.writableNeedDrain) {
        resolve();
        return;
      }
      const onDrain = () => {
        transport.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        transport.off('drain', onDrain);
        reject(closedError());
      };
      transport.once('drain', onDrain);
      transport.once('close', onClose);
    });
  }

  pauseReading(owner: object): void {
    this.#pausedBy.add(owner);
    this.#transport.pause();
  }

  resumeReading(owner: object): void {
    if (!this.#pausedBy.delete(owner)) return;
    if (this.#pausedBy.size === 0 && !this.#closed) this.#transport.resume();
  }

  /** Ends and destroys the transport; later writes are dropped. */
  close(): void {
    this.#closed = true;
    this.#pausedBy.clear();
    if (!this.#transport.destroyed) {
      this.#transport.end();
      this.#transport.destroy();
    }
  }
}
