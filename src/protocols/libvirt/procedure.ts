/**
 * Typed descriptors of libvirt RPC procedures and event messages: the numbers
 * and XDR shapes of remote_protocol.x as data, used by the client to encode
 * calls and decode replies and events.
 */
import { xdrVoid, type XdrType } from '../xdr/xdr-types.js';
import { LIBVIRT_PROGRAM } from './packet.js';

export const REMOTE_PROTOCOL_VERSION = 1;

/** How a procedure uses a stream after its reply: read = daemon to client, write = client to daemon. */
export type StreamDirection = 'read' | 'write' | 'duplex';

export interface RemoteProcedure<A, R> {
  readonly name: string;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly args: XdrType<A>;
  readonly ret: XdrType<R>;
  readonly stream?: StreamDirection;
}

export interface EventMessageType<M> {
  readonly name: string;
  readonly program: number;
  readonly procedure: number;
  readonly message: XdrType<M>;
}

/** Per-call options: a time limit (from the connection's clock) and cancellation. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type ProcedureArgs<P> = P extends RemoteProcedure<infer A, unknown> ? A : never;
export type ProcedureResult<P> = P extends RemoteProcedure<unknown, infer R> ? R : never;

export function remoteProcedure<A = void, R = void>(
  name: string,
  procedure: number,
  args: XdrType<A> = xdrVoid as XdrType<A>,
  ret: XdrType<R> = xdrVoid as XdrType<R>,
  stream?: StreamDirection,
): RemoteProcedure<A, R> {
  const descriptor = {
    name,
    program: LIBVIRT_PROGRAM.remote,
    version: REMOTE_PROTOCOL_VERSION,
    procedure,
    args,
    ret,
  };
  return stream ? { ...descriptor, stream } : descriptor;
}

export function remoteEvent<M>(
  name: string,
  procedure: number,
  message: XdrType<M>,
): EventMessageType<M> {
  return { name, program: LIBVIRT_PROGRAM.remote, procedure, message };
}
