import { ZenithError } from '../../core/errors.js';
import { PartialMessage } from '../partial-message.js';
import type { JsonObject, JsonValue, QmpMessage, QmpTimestamp } from './messages.js';

/** QEMU never sends a line this long in practice; a longer one means a broken or hostile peer. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

export interface DecodeResult {
  /** Messages completed by this chunk, in order. */
  messages: QmpMessage[];
  /** Set when the stream turned out not to be QMP; the decoder accepts nothing after it. */
  error?: ZenithError;
}

const NEWLINE = 0x0a;

/**
 * Frames a byte stream into QMP messages. Pure: bytes in, messages out, no I/O.
 * QMP puts one JSON object per line (QEMU ends lines with CRLF); the line is cut
 * on bytes, so a multi-byte UTF-8 character split across chunks is reassembled
 * before decoding. Not supported: QEMU's `pretty=on` output, which spans lines.
 */
export class QmpDecoder {
  readonly #line: PartialMessage;
  readonly #utf8 = new TextDecoder('utf-8', { fatal: true });
  #error: ZenithError | undefined;

  constructor(options: { maxLineBytes?: number } = {}) {
    this.#line = new PartialMessage(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
  }

  /** Bytes received but not yet ended by a newline. */
  get bufferedBytes(): number {
    return this.#line.bytes;
  }

  push(chunk: Uint8Array): DecodeResult {
    const messages: QmpMessage[] = [];
    if (this.#error) return { messages, error: this.#error };
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    for (;;) {
      const end = bytes.indexOf(NEWLINE, start);
      if (end === -1) break;
      const piece = bytes.subarray(start, end);
      start = end + 1;
      if (this.#line.overflows(piece)) return this.#fail(messages, oversized(this.#line.maxBytes));
      const parsed = this.#parseLine(this.#line.finish(piece));
      if (parsed instanceof ZenithError) return this.#fail(messages, parsed);
      if (parsed) messages.push(parsed);
    }
    if (start < bytes.length) {
      const rest = bytes.subarray(start);
      if (this.#line.overflows(rest)) return this.#fail(messages, oversized(this.#line.maxBytes));
      this.#line.keep(rest);
    }
    return { messages };
  }

  #fail(messages: QmpMessage[], error: ZenithError): DecodeResult {
    this.#error = error;
    this.#line.clear();
    return { messages, error };
  }

  #parseLine(line: Buffer): QmpMessage | ZenithError | undefined {
    let text: string;
    try {
      text = this.#utf8.decode(line);
    } catch {
      return protocolError('a line is not valid UTF-8', line);
    }
    if (text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return protocolError('a line is not valid JSON', line);
    }
    return classify(value, line);
  }
}

function classify(value: unknown, line: Buffer): QmpMessage | ZenithError {
  if (!isObject(value)) return protocolError('a message is not a JSON object', line);
  if (isObject(value.QMP)) {
    const greeting = value.QMP;
    const version = isObject(greeting.version) ? greeting.version : {};
    const qemu = isObject(version.qemu) ? version.qemu : {};
    return {
      kind: 'greeting',
      version: {
        qemu: { major: num(qemu.major), minor: num(qemu.minor), micro: num(qemu.micro) },
        package: typeof version.package === 'string' ? version.package : '',
      },
      capabilities: Array.isArray(greeting.capabilities)
        ? greeting.capabilities.filter((c): c is string => typeof c === 'string')
        : [],
    };
  }
  if ('return' in value) {
    return {
      kind: 'return',
      value: value.return as JsonValue,
      id: value.id as JsonValue | undefined,
    };
  }
  if (isObject(value.error)) {
    const { class: errorClass, desc } = value.error;
    if (typeof errorClass !== 'string' || typeof desc !== 'string') {
      return protocolError('an error reply lacks its class or desc', line);
    }
    return { kind: 'error', errorClass, desc, id: value.id as JsonValue | undefined };
  }
  if (typeof value.event === 'string') {
    return {
      kind: 'event',
      event: value.event,
      data: isObject(value.data) ? (value.data as JsonObject) : {},
      timestamp: timestampOf(value.timestamp),
    };
  }
  return protocolError('a message is neither a greeting, a reply nor an event', line);
}

function timestampOf(value: unknown): QmpTimestamp {
  if (!isObject(value)) return { seconds: 0, microseconds: 0 };
  return { seconds: num(value.seconds), microseconds: num(value.microseconds) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

function oversized(max: number): ZenithError {
  return new ZenithError('QMP_PROTOCOL_ERROR', `QMP line longer than ${max} bytes`, {
    reason: 'line-too-long',
    maxLineBytes: max,
  });
}

function protocolError(reason: string, line: Buffer): ZenithError {
  return new ZenithError('QMP_PROTOCOL_ERROR', `QEMU sent invalid QMP: ${reason}`, {
    reason,
    // A short excerpt is enough to diagnose; a whole garbage line could be megabytes.
    excerpt: line.subarray(0, 200).toString('utf8'),
  });
}
