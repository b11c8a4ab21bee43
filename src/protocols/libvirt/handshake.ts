/**
 * Opening a libvirt connection: AUTH_LIST, then (if asked for) polkit, then
 * CONNECT_OPEN, then CONNECT_SUPPORTS_FEATURE for keepalive.
 */
import { ZenithError } from '../../core/errors.js';
import type { CallOptions, RemoteProcedure } from './procedure.js';
import {
  CONNECT_OPEN_FLAGS,
  DRV_FEATURE,
  REMOTE_AUTH,
  authList,
  authPolkit,
  connectOpen,
  connectSupportsFeature,
} from './procedures/connect.js';

export interface HandshakeOptions {
  /** The URI the daemon opens, e.g. 'qemu:///system', 'test:///default'; the daemon's default when absent. */
  uri?: string;
  readOnly?: boolean;
  /** Time limit of each handshake call. */
  handshakeTimeoutMs?: number;
}

interface Caller {
  call<A, R>(procedure: RemoteProcedure<A, R>, args: A, options?: CallOptions): Promise<R>;
}

export async function performHandshake(
  client: Caller,
  options: HandshakeOptions,
): Promise<{ keepaliveSupported: boolean; authTypes: number[] }> {
  const callOptions: CallOptions = { timeoutMs: options.handshakeTimeoutMs ?? 30_000 };
  const { types } = await client.call(authList, undefined, callOptions);
  if (types.length > 0 && !types.includes(REMOTE_AUTH.none)) {
    if (types.includes(REMOTE_AUTH.polkit)) {
      await client.call(authPolkit, undefined, callOptions);
    } else {
      throw new ZenithError(
        'LIBVIRT_RPC_AUTH_UNSUPPORTED',
        `libvirt asks for authentication ${types.join(', ')} (SASL is not implemented)`,
        { authTypes: types },
      );
    }
  }
  await client.call(
    connectOpen,
    { name: options.uri ?? null, flags: options.readOnly ? CONNECT_OPEN_FLAGS.readOnly : 0 },
    callOptions,
  );
  const { supported } = await client.call(
    connectSupportsFeature,
    { feature: DRV_FEATURE.programKeepalive },
    callOptions,
  );
  return { keepaliveSupported: supported === 1, authTypes: types };
}
