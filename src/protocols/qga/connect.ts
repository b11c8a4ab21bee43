import { createConnection } from 'node:net';
import { ZenithError } from '../../core/errors.js';
import { QgaClient, type QgaClientOptions } from './client.js';

/**
 * Opens the host side of a VM's guest agent channel (a unix socket chardev, `server=on,wait=off`).
 * The socket opens whether or not an agent runs in the guest: only a command tells.
 */
export async function connectQga(path: string, options: QgaClientOptions = {}): Promise<QgaClient> {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      reject(
        new ZenithError(
          'QGA_CONNECT_FAILED',
          `cannot open the guest agent socket ${path}: ${error.code ?? error.message}`,
          { path, reason: error.code ?? error.message },
        ),
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve();
    });
  });
  return new QgaClient(socket, options);
}
