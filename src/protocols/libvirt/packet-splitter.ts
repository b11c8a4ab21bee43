/**
 * Cuts a byte stream that arrives in arbitrary chunks into libvirt packets.
 * A length word below a header or above the maximum is a protocol error: the
 * splitter then refuses all further input (the connection must be closed).
 */
import type { ZenithError } from '../../core/errors.js';
import {
  DEFAULT_MAX_PACKET_BYTES,
  HEADER_BYTES,
  LENGTH_BYTES,
  decodePacket,
  protocolError,
  type Packet,
} from './packet.js';

export class PacketSplitter {
  readonly #maxPacketBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #expected: number | undefined;
  #failure: ZenithError | undefined;

  constructor(maxPacketBytes = DEFAULT_MAX_PACKET_BYTES) {
    this.#maxPacketBytes = maxPacketBytes;
  }

  /** Bytes received but not yet part of a complete packet. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Feeds bytes; returns the packets completed by them (possibly none). */
  push(chunk: Buffer): Packet[] {
    if (this.#failure) throw this.#failure;
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const packets: Packet[] = [];
    try {
      for (;;) {
        if (this.#expected === undefined) {
          if (this.#buffered < LENGTH_BYTES) break;
          const length = this.#peekLength();
          if (length < LENGTH_BYTES + HEADER_BYTES) {
            throw protocolError(`packet length ${length} is shorter than a header`, { length });
          }
          if (length > this.#maxPacketBytes + LENGTH_BYTES) {
            throw protocolError(
              `packet length ${length} exceeds the maximum of ${this.#maxPacketBytes}`,
              {
                length,
                max: this.#maxPacketBytes,
              },
            );
          }
          this.#expected = length;
        }
        if (this.#buffered < this.#expected) break;
        const frame = this.#take(this.#expected);
        this.#expected = undefined;
        packets.push(decodePacket(frame));
      }
    } catch (error) {
      this.#failure = error as ZenithError;
      this.#chunks = [];
      this.#buffered = 0;
      throw error;
    }
    return packets;
  }

  #peekLength(): number {
    const first = this.#chunks[0]!;
    if (first.length >= LENGTH_BYTES) return first.readUInt32BE(0);
    const head = Buffer.concat(this.#chunks, LENGTH_BYTES);
    this.#chunks = [Buffer.concat(this.#chunks)];
    return head.readUInt32BE(0);
  }

  #take(bytes: number): Buffer {
    let frame: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= bytes) {
      frame = first.subarray(0, bytes);
      if (first.length === bytes) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(bytes);
    } else {
      const all = Buffer.concat(this.#chunks, this.#buffered);
      frame = all.subarray(0, bytes);
      this.#chunks = all.length > bytes ? [all.subarray(bytes)] : [];
    }
    this.#buffered -= bytes;
    return frame;
  }
}
