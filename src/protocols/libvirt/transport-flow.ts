/**
 * Writing to and pausing the connection's transport: writes report whether the
 * transport's buffer is full, waiters are told when it drains, and reading is
 * paused while any stream's reader is behind (resumed when none is).
 *
 * Over TLS every packet goes out as a TLS record of its own, one at a time:
 * libvirtd reads a record only as far as the packet it is parsing and waits
 * for the socket to become readable before looking at the rest, so packets
 * that shared a record (Node joins buffered writes into one) sat there until
 * some later write — a keepalive, seconds on — woke it up.
 */
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

export class TransportFlow {
  readonly #transport: Duplex;
  readonly #pausedBy = new Set<object>();
  #closed = false;
  #corked = false;
  /** TLS: packets waiting for the one being written (see above). */
  readonly #oneRecordEach: boolean;
  readonly #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  readonly #drained = new Set<() => void>();

  constructor(transport: Duplex) {
    this.#transport = transport;
    this.#oneRecordEach = transport instanceof TLSSocket;
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
    if (this.#oneRecordEach) {
      this.#queue.push(packet);
      this.#queuedBytes += packet.length;
      this.#writeNext();
      return !this.#full();
    }
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
      if (this.#oneRecordEach ? !this.#full() : !transport.writableNeedDrain) {
        resolve();
        return;
      }
      const onDrain = () => {
        this.#drained.delete(onDrain);
        transport.off('drain', onDrain);
        transport.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.#drained.delete(onDrain);
        transport.off('drain', onDrain);
        reject(closedError());
      };
      if (this.#oneRecordEach) this.#drained.add(onDrain);
      else transport.once('drain', onDrain);
      transport.once('close', onClose);
    });
  }

  /** TLS: more queued than the transport's own buffer would hold. */
  #full(): boolean {
    return this.#queuedBytes >= this.#transport.writableHighWaterMark;
  }

  /** TLS: writes the next queued packet once the one before it has left. */
  #writeNext(): void {
    if (this.#writing || this.#closed || this.#transport.destroyed) return;
    const packet = this.#queue.shift();
    if (!packet) return;
    this.#queuedBytes -= packet.length;
    this.#writing = true;
    this.#transport.write(packet, () => {
      this.#writing = false;
      if (!this.#full()) for (const wake of [...this.#drained]) wake();
      this.#writeNext();
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
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    if (!this.#transport.destroyed) {
      this.#transport.end();
      this.#transport.destroy();
    }
  }
}
