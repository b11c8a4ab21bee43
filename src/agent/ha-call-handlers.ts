/**
 * The agent's answers to the high-availability calls of the channel (protocol 1.2): configure its
 * watchdog, read the storage heartbeats of a root it shares with other hosts (how the control
 * plane reads a failed host's heartbeat), and forget VMs it released; and (1.3) discard what is
 * left of VMs that moved away while it was gone.
 */
import { resolve } from 'node:path';
import { ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import type { CallHandlers } from '../protocols/agent-channel/dispatcher.js';
import { readHeartbeatDir } from '../protocols/ha-heartbeat.js';
import type { HaWatchdog } from './ha-watchdog.js';

export type HaMethod = 'configureHa' | 'readHaHeartbeats' | 'clearReleased' | 'discardMovedVms';

export function haCallHandlers(
  watchdog: HaWatchdog,
  driver: QemuDriver,
  storageRoots: string[],
  logger: Logger,
): Pick<CallHandlers, HaMethod> {
  const roots = new Set(storageRoots.map((root) => resolve(root)));
  return {
    configureHa: async ([settings]) => watchdog.configure(settings),
    readHaHeartbeats: async ([root]) => {
      if (!roots.has(resolve(root)))
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `${root} is not one of this host's storage roots`,
          {
            root,
            storageRoots,
          },
        );
      const { heartbeats, invalid } = await readHeartbeatDir(root);
      for (const file of invalid)
        logger.warn({ root, ...file }, 'ha: a file of the heartbeat directory is not a heartbeat');
      return heartbeats;
    },
    clearReleased: async ([uuids]) => watchdog.clearReleased(uuids),
    discardMovedVms: async ([uuids]) => {
      const result = await driver.discardMovedAway(uuids);
      for (const { uuid, reason } of result.kept)
        logger.error({ uuid, reason }, 'ha: a VM that moved away is still here; kept');
      // Dealt with: released no more.
      watchdog.clearReleased(result.discarded);
      return result;
    },
  };
}
