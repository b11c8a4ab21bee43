/**
 * A bounds-checked big-endian XDR reader. Reading past the end, a bad pad or
 * a length over its declared maximum throws XDR_DECODE_ERROR, never a RangeError.
 */
import { xdrDecodeError } from './xdr-error.js';

export class XdrReader {
  readonly #buffer: Buffer;
  #offset: number;
  readonly #end: number;

  constructor(buffer: Uint8Array, offset = 0, end = buffer.length) {
    this.#buffer = Buffer.isBuffer(buffer)
      ? buffer
      : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.#offset = offset;
    this.#end = end;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#end - this.#offset;
  }

  #need(bytes: number, what: string): void {
    if (bytes > this.#end - this.#offset) {
      throw xdrDecodeError(
        `truncated XDR data: ${what} needs ${bytes} bytes, ${this.remaining} left`,
        {
          offset: this.#offset,
          needed: bytes,
          remaining: this.remaining,
        },
      );
    }
  }

  readInt(): number {
    this.#need(4, 'int');
    const value = this.#buffer.readInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  readUint(): number {
    this.#need(4, 'unsigned int');
    const value = this.#buffer.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  readHyper(): bigint {
    this.#need(8, 'hyper');
    const value = this.#buffer.readBigInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  readUhyper(): bigint {
    this.#need(8, 'unsigned hyper');
    const value = this.#buffer.readBigUInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  readDouble(): number {
    this.#need(8, 'double');
    const value = this.#buffer.readDoubleBE(this.#offset);
    this.#offset += 8;
    return value;
  }

  readFloat(): number {
    this.#need(4, 'float');
    const value = this.#buffer.readFloatBE(this.#offset);
    this.#offset += 4;
    return value;
  }

  /** `length` bytes followed by zero padding to a multiple of 4; returns a copy. */
  readPadded(length: number): Buffer {
    const padded = (length + 3) & ~3;
    this.#need(padded, `opaque[${length}]`);
    const start = this.#offset;
    for (let i = start + length; i < start + padded; i++) {
      if (this.#buffer[i] !== 0) throw xdrDecodeError('non-zero XDR padding', { offset: i });
    }
    this.#offset += padded;
    return Buffer.from(this.#buffer.subarray(start, start + length));
  }

  /** The rest of the input, raw (for payloads that are not XDR, such as stream data). */
  readRest(): Buffer {
    const rest = this.#buffer.subarray(this.#offset, this.#end);
    this.#offset = this.#end;
    return rest;
  }

  /** Throws unless every byte was consumed: trailing garbage is a decode error too. */
  expectEnd(what = 'message'): void {
    if (this.#offset !== this.#end) {
      throw xdrDecodeError(`${this.#end - this.#offset} unexpected trailing bytes after ${what}`, {
        offset: this.#offset,
      });
    }
  }
}
