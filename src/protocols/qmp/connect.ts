import { createConnection } from 'node:net';
import { ZenithError } from '../../core/errors.js';
import { QmpClient, type QmpClientOptions } from './client.js';

/**
 * Opens the QMP unix socket of a QEMU process (`-qmp unix:PATH,server=on,wait=off`)
 * and negotiates. QEMU serves one QMP client per socket at a time: a second
 * client is accepted by the kernel but gets no greeting until the first leaves,
 * so it fails with QMP_CONNECT_FAILED after the handshake timeout.
 */
export async function connectQmp(path: string, options: QmpClientOptions = {}): Promise<QmpClient> {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      reject(
        new ZenithError(
          'QMP_CONNECT_FAILED',
          `cannot open QMP socket ${path}: ${error.code ?? error.message}`,
          {
            path,
            reason: error.code ?? error.message,
          },
        ),
      );
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve();
    });
  });
  try {
    return await QmpClient.open(socket, options);
  } catch (error) {
    if (error instanceof ZenithError) error.details.path = path;
    throw error;
  }
}
