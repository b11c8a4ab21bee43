/**
 * qemu-nbd (QEMU's own NBD server, Debian's qemu-utils) serving one image on a unix socket: the
 * real peer of the NBD client's tests, started as the QEMU driver starts it, but persistent (a
 * test connects more than once: nbdinfo beside our client) and answered once it accepts.
 */
import { createConnection } from 'node:net';
import {
  startQemuNbd as startServer,
  type QemuNbd,
  type QemuNbdOptions,
} from '../hypervisors/qemu/qemu-nbd.js';
import { until } from './wait.js';

export type { QemuNbd, QemuNbdOptions };

export async function startQemuNbd(options: QemuNbdOptions): Promise<QemuNbd> {
  const server = await startServer({ persistent: true, ...options });
  await until(`qemu-nbd listening on ${options.socket}`, () => accepts(options.socket), 20_000, 20);
  return server;
}

function accepts(path: string): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(undefined));
  });
}
