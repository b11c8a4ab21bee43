import { ZenithError } from '../../core/errors.js';
import { openUnixSocket } from '../unix-socket.js';
import { QmpClient, type QmpClientOptions } from './client.js';

/**
 * Opens the QMP unix socket of a QEMU process (`-qmp unix:PATH,server=on,wait=off`)
 * and negotiates. QEMU serves one QMP client per socket at a time: a second
 * client is accepted by the kernel but gets no greeting until the first leaves,
 * so it fails with QMP_CONNECT_FAILED after the handshake timeout.
 */
export async function connectQmp(path: string, options: QmpClientOptions = {}): Promise<QmpClient> {
  const socket = await openUnixSocket(path, { code: 'QMP_CONNECT_FAILED', what: 'QMP socket' });
  try {
    return await QmpClient.open(socket, options);
  } catch (error) {
    if (error instanceof ZenithError) error.details.path = path;
    throw error;
  }
}
