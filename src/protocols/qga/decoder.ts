import { ZenithError } from '../../core/errors.js';
import { PartialMessage } from '../partial-message.js';
import type { JsonValue, QgaMessage } from './messages.js';
import { QGA_DELIMITER } from './encoder.js';

/** No answer of the commands Zenith sends comes near this; a longer one means a broken peer. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface QgaDecodeResult {
  /** Messages completed by this chunk, in order. */
  messages: QgaMessage[];
  /** Set when the stream turned out not to be QGA; the decoder accepts nothing after it. */
  error?: ZenithError;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Frames the agent's byte stream into messages. Pure: bytes in, messages out, no I/O.
 * An answer is one JSON object; it is cut by counting braces and brackets outside strings (qemu-ga
 * ends it with a newline, but nothing in the protocol promises that). A 0xFF byte is the
 * delimiter of `guest-sync-delimited`: it is never part of JSON text, so one met inside an object
 * drops that object (a stale, cut answer) and is reported as the delimiter. Bytes between objects
 * that are not JSON (the rest of an answer cut before this connection began) are skipped.
 */
export class QgaDecoder {
  readonly #object: PartialMessage;
  readonly #utf8 = new TextDecoder('utf-8', { fatal: true });
  #depth = 0;
  #inString = false;
  #escaped = false;
  #error: ZenithError | undefined;

  constructor(options: { maxMessageBytes?: number } = {}) {
    this.#object = new PartialMessage(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
  }

  /** Bytes of an object begun but not yet ended. */
  get bufferedBytes(): number {
    return this.#object.bytes;
  }

  push(chunk: Uint8Array): QgaDecodeResult {
    const messages: QgaMessage[] = [];
    if (this.#error) return { messages, error: this.#error };
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = -1; // where the object under way begins in this chunk
    if (this.#depth > 0) start = 0;
    for (let at = 0; at < bytes.length; at++) {
      const byte = bytes[at]!;
      if (byte === QGA_DELIMITER) {
        this.#reset();
        start = -1;
        messages.push({ kind: 'delimiter' });
        continue;
      }
      if (this.#depth === 0) {
        if (byte === OPEN_BRACE) {
          start = at;
          this.#depth = 1;
        }
        continue;
      }
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === BACKSLASH) this.#escaped = true;
        else if (byte === QUOTE) this.#inString = false;
        continue;
      }
      if (byte === QUOTE) this.#inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) this.#depth++;
      else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) this.#depth--;
      if (this.#depth === 0) {
        const piece = bytes.subarray(start, at + 1);
        if (this.#object.overflows(piece))
          return this.#fail(messages, oversized(this.#object.maxBytes));
        const text = this.#object.finish(piece);
        this.#reset();
        start = -1;
        const parsed = this.#parse(text);
        if (parsed instanceof ZenithError) return this.#fail(messages, parsed);
        messages.push(parsed);
      }
    }
    if (this.#depth > 0 && start >= 0) {
      const rest = bytes.subarray(start);
      if (this.#object.overflows(rest))
        return this.#fail(messages, oversized(this.#object.maxBytes));
      this.#object.keep(rest);
    }
    return { messages };
  }

  #reset(): void {
    this.#object.clear();
    this.#depth = 0;
    this.#inString = false;
    this.#escaped = false;
  }

  #fail(messages: QgaMessage[], error: ZenithError): QgaDecodeResult {
    this.#error = error;
    this.#reset();
    return { messages, error };
  }

  #parse(bytes: Buffer): QgaMessage | ZenithError {
    let value: unknown;
    try {
      value = JSON.parse(this.#utf8.decode(bytes));
    } catch {
      return protocolError('an answer is not valid UTF-8 JSON', bytes);
    }
    if (!isObject(value)) return protocolError('an answer is not a JSON object', bytes);
    if ('return' in value) return { kind: 'return', value: value.return as JsonValue };
    if (isObject(value.error)) {
      const { class: errorClass, desc } = value.error;
      if (typeof errorClass !== 'string' || typeof desc !== 'string')
        return protocolError('an error answer lacks its class or desc', bytes);
      return { kind: 'error', errorClass, desc };
    }
    return protocolError('an object is neither a return nor an error', bytes);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function oversized(max: number): ZenithError {
  return new ZenithError('QGA_PROTOCOL_ERROR', `a guest agent answer is longer than ${max} bytes`, {
    reason: 'answer-too-long',
    maxMessageBytes: max,
  });
}

function protocolError(reason: string, bytes: Buffer): ZenithError {
  return new ZenithError('QGA_PROTOCOL_ERROR', `the guest agent sent invalid QGA: ${reason}`, {
    reason,
    excerpt: bytes.subarray(0, 200).toString('utf8'),
  });
}
