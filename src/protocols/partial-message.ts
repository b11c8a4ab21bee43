/**
 * The bytes of one message that arrives in pieces across chunks, up to a limit: a framing decoder
 * keeps the pieces until the message ends, then takes them as one buffer.
 */
export class PartialMessage {
  #pieces: Buffer[] = [];
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes kept of a message begun but not yet ended. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `piece` would make the message longer than the limit. */
  overflows(piece: Uint8Array): boolean {
    return this.#bytes + piece.length > this.maxBytes;
  }

  /** Keeps a copy of `piece`: the caller may reuse its buffer. */
  keep(piece: Uint8Array): void {
    this.#pieces.push(Buffer.from(piece));
    this.#bytes += piece.length;
  }

  /** The whole message, whose last piece is `last`; nothing is kept after. */
  finish(last: Buffer): Buffer {
    const whole = this.#pieces.length === 0 ? last : Buffer.concat([...this.#pieces, last]);
    this.clear();
    return whole;
  }

  clear(): void {
    this.#pieces = [];
    this.#bytes = 0;
  }
}
