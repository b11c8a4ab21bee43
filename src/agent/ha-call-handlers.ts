/**
 * The agent's answers to the high-availability calls of the channel (protocol 1.2): configure its
 * watchdog, read the storage heartbeats of a root it shares with other hosts (how the control
 * plane reads a failed host's heartbeat), and forget VMs it released.
 */
import { resolve } from 'node:path';
import { ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { CallHandlers } from '../protocols/agent-channel/dispatcher.js';
import { readHeartbeatDir } from '../protocols/ha-heartbeat.js';
import type { HaWatchdog } from './ha-watchdog.js';

export type HaMethod = 'configureHa' | 'readHaHeartbeats' | 'clearReleased';

export function haCallHandlers(
  watchdog: HaWatchdog,
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
  };
}
