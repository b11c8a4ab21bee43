/**
 * The machine Zenith runs on, connected as a QEMU host on the first start
 * (once: a marker in the data directory remembers it, so an operator who
 * removes the connection is not overruled at the next start).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { ConnectionService } from './connection-service.js';

export async function connectLocalHost(
  connections: ConnectionService,
  dataDir: string,
  logger: Logger,
): Promise<void> {
  const marker = join(dataDir, 'local-host.connected');
  if (existsSync(marker)) return;
  try {
    const connection = await connections.add({
      name: 'local',
      type: 'qemu',
      settings: { storageRoots: [join(dataDir, 'images')], accelerator: 'auto' },
    });
    if (connection.state !== 'connected') {
      logger.warn(
        { error: connection.lastError },
        'the local host could not be connected; is QEMU installed?',
      );
      await connections.remove(connection.id);
      return;
    }
    writeFileSync(marker, `${connection.id}\n`);
    logger.info(
      { connection: connection.id, images: join(dataDir, 'images') },
      'the local host is connected (QEMU)',
    );
  } catch (error) {
    // A connection named 'local' made by the operator wins.
    if (isZenithError(error) && error.code === 'ZEN_CONFLICT') writeFileSync(marker, 'existing\n');
    else logger.warn({ err: error }, 'the local host could not be connected');
  }
}
