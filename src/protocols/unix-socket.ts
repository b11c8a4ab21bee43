import { createConnection, type Socket } from 'node:net';
import { ZenithError } from '../core/errors.js';

/**
 * Connects to a unix socket a peer serves (QEMU's QMP socket, a guest agent channel): the socket
 * once connected, or the protocol's connect error (`code`) naming the path and the system's reason.
 */
export async function openUnixSocket(
  path: string,
  failure: { code: 'QMP_CONNECT_FAILED' | 'QGA_CONNECT_FAILED'; what: string },
): Promise<Socket> {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      const reason = error.code ?? error.message;
      reject(
        new ZenithError(failure.code, `cannot open ${failure.what} ${path}: ${reason}`, {
          path,
          reason,
        }),
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return socket;
}
