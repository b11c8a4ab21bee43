/** The keepalive program (src/rpc/virkeepaliveprotocol.x): PING and PONG, both type MESSAGE with no payload. */
import { xdrVoid } from '../../xdr/xdr-types.js';
import { LIBVIRT_PROGRAM } from '../packet.js';
import type { EventMessageType } from '../procedure.js';

export const KEEPALIVE_VERSION = 1;
export const KEEPALIVE_PROC = { ping: 1, pong: 2 } as const;

export const keepalivePing: EventMessageType<void> = {
  name: 'keepalivePing',
  program: LIBVIRT_PROGRAM.keepalive,
  procedure: KEEPALIVE_PROC.ping,
  message: xdrVoid,
};

export const keepalivePong: EventMessageType<void> = {
  name: 'keepalivePong',
  program: LIBVIRT_PROGRAM.keepalive,
  procedure: KEEPALIVE_PROC.pong,
  message: xdrVoid,
};
