import { openUnixSocket } from '../unix-socket.js';
import { QgaClient, type QgaClientOptions } from './client.js';

/**
 * Opens the host side of a VM's guest agent channel (a unix socket chardev, `server=on,wait=off`).
 * The socket opens whether or not an agent runs in the guest: only a command tells.
 */
export async function connectQga(path: string, options: QgaClientOptions = {}): Promise<QgaClient> {
  const socket = await openUnixSocket(path, {
    code: 'QGA_CONNECT_FAILED',
    what: 'the guest agent socket',
  });
  return new QgaClient(socket, options);
}
