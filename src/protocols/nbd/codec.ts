/**
 * The NBD protocol's messages as bytes, without sockets: what a client sends
 * (client flags, options, requests) and what it reads (the greeting, option
 * replies, simple and structured replies). Every integer is big-endian.
 */
import { ZenithError } from '../../core/errors.js';
import {
  INIT_MAGIC,
  Info,
  OPTION_MAGIC,
  OPTION_REPLY_MAGIC,
  OptionReply,
  REPLY_FLAG_DONE,
  REQUEST_MAGIC,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  errnoNames,
} from './constants.js';

function protocolError(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('NBD_PROTOCOL_ERROR', message, details);
}

/** The server's first 18 bytes in newstyle negotiation: NBDMAGIC, IHAVEOPT, handshake flags. */
export const GREETING_LENGTH = 18;

export function decodeGreeting(bytes: Buffer): { handshakeFlags: number } {
  if (!bytes.subarray(0, 8).equals(INIT_MAGIC)) {
    throw protocolError('the peer is not an NBD server (no NBDMAGIC)');
  }
  if (!bytes.subarray(8, 16).equals(OPTION_MAGIC)) {
    throw protocolError(
      'the NBD server does not speak newstyle negotiation (oldstyle servers are not supported)',
    );
  }
  return { handshakeFlags: bytes.readUInt16BE(16) };
}

export function encodeClientFlags(flags: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(flags);
  return bytes;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(16);
  OPTION_MAGIC.copy(header, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(data.length, 12);
  return Buffer.concat([header, data]);
}

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** NBD_OPT_GO's (and NBD_OPT_INFO's) data: the export's name and the information asked for. */
export function encodeGoData(exportName: string, infoRequests: readonly number[]): Buffer {
  const requests = Buffer.alloc(2 + 2 * infoRequests.length);
  requests.writeUInt16BE(infoRequests.length, 0);
  infoRequests.forEach((info, index) => requests.writeUInt16BE(info, 2 + 2 * index));
  return Buffer.concat([lengthPrefixed(exportName), requests]);
}

/** NBD_OPT_SET_META_CONTEXT's (and LIST's) data: the export's name and the contexts asked for. */
export function encodeMetaContextData(exportName: string, queries: readonly string[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length);
  return Buffer.concat([lengthPrefixed(exportName), count, ...queries.map(lengthPrefixed)]);
}

export const OPTION_REPLY_HEADER_LENGTH = 20;

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function decodeOptionReplyHeader(bytes: Buffer): OptionReplyHeader {
  if (bytes.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) {
    throw protocolError('an option reply does not start with the option reply magic');
  }
  return {
    option: bytes.readUInt32BE(8),
    type: bytes.readUInt32BE(12),
    length: bytes.readUInt32BE(16),
  };
}

export type ExportInfo =
  | { type: 'export'; size: number; transmissionFlags: number }
  | { type: 'name'; name: string }
  | { type: 'description'; description: string }
  | { type: 'block-size'; minimum: number; preferred: number; maximum: number }
  | { type: 'other'; info: number };

/** The data of an NBD_REP_INFO reply. */
export function decodeInfo(data: Buffer): ExportInfo {
  if (data.length < 2) throw protocolError('an NBD_REP_INFO reply is shorter than its type');
  const info = data.readUInt16BE(0);
  switch (info) {
    case Info.EXPORT:
      if (data.length !== 12)
        throw protocolError('NBD_INFO_EXPORT is not 12 bytes', { length: data.length });
      return {
        type: 'export',
        size: safeNumber(data.readBigUInt64BE(2)),
        transmissionFlags: data.readUInt16BE(10),
      };
    case Info.NAME:
      return { type: 'name', name: data.subarray(2).toString('utf8') };
    case Info.DESCRIPTION:
      return { type: 'description', description: data.subarray(2).toString('utf8') };
    case Info.BLOCK_SIZE:
      if (data.length !== 14)
        throw protocolError('NBD_INFO_BLOCK_SIZE is not 14 bytes', { length: data.length });
      return {
        type: 'block-size',
        minimum: data.readUInt32BE(2),
        preferred: data.readUInt32BE(6),
        maximum: data.readUInt32BE(10),
      };
    default:
      return { type: 'other', info };
  }
}

/** The data of an NBD_REP_META_CONTEXT reply: the id the server gives the context, and its name. */
export function decodeMetaContext(data: Buffer): { id: number; name: string } {
  if (data.length < 4) throw protocolError('an NBD_REP_META_CONTEXT reply is shorter than its id');
  return { id: data.readUInt32BE(0), name: data.subarray(4).toString('utf8') };
}

/** Whether an option reply type is one the client understands as success. */
export function isKnownOptionReply(type: number): boolean {
  return (Object.values(OptionReply) as number[]).includes(type);
}

export interface Request {
  type: number;
  flags?: number;
  cookie: bigint;
  offset: number;
  length: number;
}

export const REQUEST_HEADER_LENGTH = 28;

export function encodeRequest(request: Request): Buffer {
  const bytes = Buffer.alloc(REQUEST_HEADER_LENGTH);
  bytes.writeUInt32BE(REQUEST_MAGIC, 0);
  bytes.writeUInt16BE(request.flags ?? 0, 4);
  bytes.writeUInt16BE(request.type, 6);
  bytes.writeBigUInt64BE(request.cookie, 8);
  bytes.writeBigUInt64BE(BigInt(request.offset), 16);
  bytes.writeUInt32BE(request.length, 24);
  return bytes;
}

export interface BlockStatusExtent {
  length: number;
  flags: number;
}

export type StructuredChunk =
  | { type: 'none' }
  | { type: 'offset-data'; offset: number; data: Buffer }
  | { type: 'offset-hole'; offset: number; length: number }
  | { type: 'block-status'; contextId: number; extents: BlockStatusExtent[] }
  | { type: 'error'; error: number; errorName: string; message: string; offset?: number }
  | { type: 'unknown'; replyType: number };

export type Reply =
  | { kind: 'simple'; cookie: bigint; error: number; data?: Buffer }
  | { kind: 'structured'; cookie: bigint; done: boolean; chunk: StructuredChunk };

const SIMPLE_HEADER_LENGTH = 16;
const STRUCTURED_HEADER_LENGTH = 20;
/** No structured chunk a client asks for is larger than a read's data (at most 32 MiB here) plus its offset. */
const MAX_CHUNK_PAYLOAD = 64 * 1024 * 1024;

/**
 * How many bytes the reply at the front of `bytes` takes, header and payload, or undefined while
 * its header is not all there. A simple reply to a read carries the data the read asked for,
 * which only the request tells: `readLength(cookie)` answers it (undefined for other requests).
 */
export function replyFrameLength(
  bytes: Buffer,
  readLength: (cookie: bigint) => number | undefined,
): number | undefined {
  if (bytes.length < 4) return undefined;
  const magic = bytes.readUInt32BE(0);
  if (magic === SIMPLE_REPLY_MAGIC) {
    if (bytes.length < SIMPLE_HEADER_LENGTH) return undefined;
    const error = bytes.readUInt32BE(4);
    return SIMPLE_HEADER_LENGTH + (error === 0 ? (readLength(bytes.readBigUInt64BE(8)) ?? 0) : 0);
  }
  if (magic === STRUCTURED_REPLY_MAGIC) {
    if (bytes.length < STRUCTURED_HEADER_LENGTH) return undefined;
    const length = bytes.readUInt32BE(16);
    if (length > MAX_CHUNK_PAYLOAD) {
      throw protocolError('a structured reply chunk is larger than any request asks for', {
        length,
      });
    }
    return STRUCTURED_HEADER_LENGTH + length;
  }
  throw protocolError('a reply starts with neither the simple nor the structured reply magic', {
    magic: `0x${magic.toString(16)}`,
  });
}

/** The longest header a reply has: enough for replyFrameLength to answer. */
export const REPLY_HEADER_MAX = STRUCTURED_HEADER_LENGTH;

/** Decodes one whole reply, as long as replyFrameLength said (`frame` holds exactly it). */
export function decodeReply(frame: Buffer): Reply {
  const magic = frame.readUInt32BE(0);
  if (magic === SIMPLE_REPLY_MAGIC) {
    const reply: Reply = {
      kind: 'simple',
      cookie: frame.readBigUInt64BE(8),
      error: frame.readUInt32BE(4),
    };
    if (frame.length > SIMPLE_HEADER_LENGTH) reply.data = frame.subarray(SIMPLE_HEADER_LENGTH);
    return reply;
  }
  const flags = frame.readUInt16BE(4);
  return {
    kind: 'structured',
    cookie: frame.readBigUInt64BE(8),
    done: (flags & REPLY_FLAG_DONE) !== 0,
    chunk: decodeChunk(frame.readUInt16BE(6), frame.subarray(STRUCTURED_HEADER_LENGTH)),
  };
}

function decodeChunk(type: number, payload: Buffer): StructuredChunk {
  switch (type) {
    case ReplyType.NONE:
      return { type: 'none' };
    case ReplyType.OFFSET_DATA:
      if (payload.length < 8)
        throw protocolError('NBD_REPLY_TYPE_OFFSET_DATA is shorter than its offset');
      return {
        type: 'offset-data',
        offset: safeNumber(payload.readBigUInt64BE(0)),
        data: payload.subarray(8),
      };
    case ReplyType.OFFSET_HOLE:
      if (payload.length !== 12) throw protocolError('NBD_REPLY_TYPE_OFFSET_HOLE is not 12 bytes');
      return {
        type: 'offset-hole',
        offset: safeNumber(payload.readBigUInt64BE(0)),
        length: payload.readUInt32BE(8),
      };
    case ReplyType.BLOCK_STATUS: {
      if (payload.length < 4 || (payload.length - 4) % 8 !== 0) {
        throw protocolError(
          'NBD_REPLY_TYPE_BLOCK_STATUS is not a context id and whole descriptors',
          {
            length: payload.length,
          },
        );
      }
      const extents: BlockStatusExtent[] = [];
      for (let at = 4; at < payload.length; at += 8) {
        extents.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
      }
      return { type: 'block-status', contextId: payload.readUInt32BE(0), extents };
    }
    case ReplyType.ERROR:
    case ReplyType.ERROR_OFFSET: {
      if (payload.length < 6)
        throw protocolError('an error chunk is shorter than its error and message length');
      const error = payload.readUInt32BE(0);
      const messageLength = payload.readUInt16BE(4);
      const offsetAt = 6 + messageLength;
      const withOffset = type === ReplyType.ERROR_OFFSET;
      if (payload.length !== offsetAt + (withOffset ? 8 : 0)) {
        throw protocolError('an error chunk does not match its message length');
      }
      const chunk: StructuredChunk = {
        type: 'error',
        error,
        errorName: errnoName(error),
        message: payload.subarray(6, offsetAt).toString('utf8'),
      };
      if (withOffset) chunk.offset = safeNumber(payload.readBigUInt64BE(offsetAt));
      return chunk;
    }
    default:
      if ((type & (1 << 15)) !== 0) {
        // An error type this client does not know: still an error, as the protocol says.
        const error = payload.length >= 4 ? payload.readUInt32BE(0) : 5;
        return {
          type: 'error',
          error,
          errorName: errnoName(error),
          message: `error reply of type ${type}`,
        };
      }
      return { type: 'unknown', replyType: type };
  }
}

export function errnoName(error: number): string {
  return errnoNames[error] ?? `errno ${error}`;
}

function safeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw protocolError('an offset or size is beyond 2^53', { value: String(value) });
  return Number(value);
}
