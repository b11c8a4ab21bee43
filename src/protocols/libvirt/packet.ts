/**
 * libvirt RPC packets (src/rpc/virnetprotocol.x): a 4-byte big-endian length that
 * counts itself, a header of six u32 and an XDR payload. Pure: bytes in, packets out.
 */
import { ZenithError } from '../../core/errors.js';
import { XdrReader } from '../xdr/xdr-reader.js';
import { XdrWriter } from '../xdr/xdr-writer.js';

export const LIBVIRT_PROGRAM = {
  remote: 0x20008086,
  qemu: 0x20008087,
  lxc: 0x00068000,
  keepalive: 0x6b656570,
} as const;

export const MESSAGE_TYPE = {
  call: 0,
  reply: 1,
  message: 2,
  stream: 3,
  callWithFds: 4,
  replyWithFds: 5,
  streamHole: 6,
} as const;
export type MessageType = (typeof MESSAGE_TYPE)[keyof typeof MESSAGE_TYPE];

export const MESSAGE_STATUS = { ok: 0, error: 1, continue: 2 } as const;
export type MessageStatus = (typeof MESSAGE_STATUS)[keyof typeof MESSAGE_STATUS];

/** Bytes of the length word. */
export const LENGTH_BYTES = 4;
/** Bytes of the header (six u32). */
export const HEADER_BYTES = 24;
/** libvirt's VIR_NET_MESSAGE_MAX: the largest message, not counting the length word. */
export const DEFAULT_MAX_PACKET_BYTES = 16 * 1024 * 1024;
/** Stream data per packet; libvirt's own client sends at most this much (VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX). */
export const STREAM_CHUNK_BYTES = 256 * 1024;

export interface PacketHeader {
  program: number;
  version: number;
  procedure: number;
  type: MessageType;
  serial: number;
  status: MessageStatus;
}

export interface Packet {
  header: PacketHeader;
  /** The XDR payload (or raw stream data), without length and header. */
  payload: Buffer;
}

export function protocolError(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('LIBVIRT_RPC_PROTOCOL_ERROR', message, details);
}

function writeHeader(writer: XdrWriter, header: PacketHeader): void {
  writer.writeUint(0); // length, patched at the end
  writer.writeUint(header.program);
  writer.writeUint(header.version);
  writer.writeInt(header.procedure);
  writer.writeInt(header.type);
  writer.writeUint(header.serial);
  writer.writeInt(header.status);
}

/** Encodes a packet whose payload is written by `writeBody` (an XDR encoder). */
export function encodePacket(
  header: PacketHeader,
  writeBody?: (writer: XdrWriter) => void,
): Buffer {
  const writer = new XdrWriter(128);
  writeHeader(writer, header);
  writeBody?.(writer);
  writer.patchUint(0, writer.length);
  return writer.toBuffer();
}

/** Encodes a packet around payload bytes as they are (stream data). */
export function encodeRawPacket(header: PacketHeader, payload: Uint8Array): Buffer {
  const packet = Buffer.allocUnsafe(LENGTH_BYTES + HEADER_BYTES + payload.length);
  packet.writeUInt32BE(packet.length, 0);
  packet.writeUInt32BE(header.program, 4);
  packet.writeUInt32BE(header.version, 8);
  packet.writeInt32BE(header.procedure, 12);
  packet.writeInt32BE(header.type, 16);
  packet.writeUInt32BE(header.serial, 20);
  packet.writeInt32BE(header.status, 24);
  packet.set(payload, LENGTH_BYTES + HEADER_BYTES);
  return packet;
}

const KNOWN_TYPES = new Set<number>(Object.values(MESSAGE_TYPE));
const KNOWN_STATUSES = new Set<number>(Object.values(MESSAGE_STATUS));

/** Decodes one complete frame (length word included). */
export function decodePacket(frame: Buffer): Packet {
  if (frame.length < LENGTH_BYTES + HEADER_BYTES) {
    throw protocolError(`packet of ${frame.length} bytes is shorter than a header`, {
      length: frame.length,
    });
  }
  const reader = new XdrReader(frame);
  const length = reader.readUint();
  if (length !== frame.length) {
    throw protocolError(
      `packet length word ${length} does not match frame of ${frame.length} bytes`,
    );
  }
  const program = reader.readUint();
  const version = reader.readUint();
  const procedure = reader.readInt();
  const type = reader.readInt();
  const serial = reader.readUint();
  const status = reader.readInt();
  if (!KNOWN_TYPES.has(type)) throw protocolError(`unknown message type ${type}`, { type });
  if (!KNOWN_STATUSES.has(status))
    throw protocolError(`unknown message status ${status}`, { status });
  return {
    header: {
      program,
      version,
      procedure,
      type: type as MessageType,
      serial,
      status: status as MessageStatus,
    },
    payload: reader.readRest(),
  };
}
