/**
 * A growable big-endian buffer for XDR (RFC 4506) encoding. Every item takes a
 * multiple of 4 bytes; opaque data and strings are zero-padded.
 */
import { xdrEncodeError } from './xdr-error.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
const UINT32_MAX = 0xffffffff;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

export class XdrWriter {
  #buffer: Buffer;
  #length = 0;

  constructor(initialCapacity = 256) {
    this.#buffer = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /** A view of the bytes written so far (shares memory with the writer until the next write). */
  view(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }

  /** A copy of the bytes written so far. */
  toBuffer(): Buffer {
    return Buffer.from(this.view());
  }

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    let capacity = this.#buffer.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafe(capacity);
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
  }

  writeInt(value: number): void {
    if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
      throw xdrEncodeError(`int out of range: ${value}`, { value });
    }
    this.#reserve(4);
    this.#buffer.writeInt32BE(value, this.#length);
    this.#length += 4;
  }

  writeUint(value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
      throw xdrEncodeError(`unsigned int out of range: ${value}`, { value });
    }
    this.#reserve(4);
    this.#buffer.writeUInt32BE(value, this.#length);
    this.#length += 4;
  }

  writeHyper(value: bigint): void {
    if (value < INT64_MIN || value > INT64_MAX) {
      throw xdrEncodeError(`hyper out of range: ${value}`, { value: value.toString() });
    }
    this.#reserve(8);
    this.#buffer.writeBigInt64BE(value, this.#length);
    this.#length += 8;
  }

  writeUhyper(value: bigint): void {
    if (value < 0n || value > UINT64_MAX) {
      throw xdrEncodeError(`unsigned hyper out of range: ${value}`, { value: value.toString() });
    }
    this.#reserve(8);
    this.#buffer.writeBigUInt64BE(value, this.#length);
    this.#length += 8;
  }

  writeDouble(value: number): void {
    this.#reserve(8);
    this.#buffer.writeDoubleBE(value, this.#length);
    this.#length += 8;
  }

  writeFloat(value: number): void {
    this.#reserve(4);
    this.#buffer.writeFloatBE(value, this.#length);
    this.#length += 4;
  }

  /** Raw bytes followed by zero padding to a multiple of 4 (fixed-length opaque). */
  writePadded(bytes: Uint8Array): void {
    const padded = (bytes.length + 3) & ~3;
    this.#reserve(padded);
    this.#buffer.set(bytes, this.#length);
    this.#buffer.fill(0, this.#length + bytes.length, this.#length + padded);
    this.#length += padded;
  }

  /** Bytes as they are, no padding: for framing headers written around XDR bodies. */
  writeRaw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Overwrites a big-endian u32 already written (for length prefixes known only at the end). */
  patchUint(offset: number, value: number): void {
    if (offset < 0 || offset + 4 > this.#length) {
      throw xdrEncodeError(`patch offset out of range: ${offset}`);
    }
    this.#buffer.writeUInt32BE(value, offset);
  }
}
