/**
 * The high-availability watchdog (ha-watchdog.ts) plugged into a real agent:
 * its VMs are the QEMU driver's, its heartbeats files on the storage roots,
 * its settings a file in the agent's state directory, and the channel it
 * watches the agent's WebSocket, pinged every heartbeat (a cut network does
 * not close a WebSocket: only silence tells).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import type WebSocket from 'ws';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import { heartbeatPath, readHeartbeatFile, writeHeartbeatFile } from '../protocols/ha-heartbeat.js';
import { HaSentinelLink } from './ha-sentinel-link.js';
import {
  HaWatchdog,
  type HaPersistedState,
  type HaStateFile,
  type HaVmControl,
  type HeartbeatStorage,
} from './ha-watchdog.js';

const quietly = (timeoutMs?: number) => ({
  signal: timeoutMs === undefined ? new AbortController().signal : AbortSignal.timeout(timeoutMs),
  progress: () => undefined,
});

export function qemuHaControl(driver: QemuDriver): HaVmControl {
  return {
    vms: () => driver.localVms(),
    // stopVm without force: the power button, then power-off once the signal's time is up.
    shutdown: async (id, timeoutMs) => {
      await driver.stopVm(id, quietly(timeoutMs), { force: false });
    },
    powerOff: async (id) => {
      await driver.stopVm(id, quietly(), { force: true });
    },
    kill: (pid) => {
      // Recorded first: the VM's stop says fenced, not crashed (VM monitoring leaves it alone).
      driver.noteFencing(pid);
      process.kill(pid, 'SIGKILL');
    },
  };
}

export const heartbeatFiles: HeartbeatStorage = {
  write: writeHeartbeatFile,
  read: (root, hostName) => readHeartbeatFile(heartbeatPath(root, hostName)),
};

/** `<stateDir>/ha.json`, replaced atomically. */
export function haStateFile(stateDir: string): HaStateFile {
  const file = join(stateDir, 'ha.json');
  return {
    load: () =>
      existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HaPersistedState) : null,
    save: (state) => {
      mkdirSync(stateDir, { recursive: true });
      const next = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(next, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      renameSync(next, file);
    },
  };
}

/**
 * The control plane's host as the isolation address: it answers when a TCP connection to its port
 * is accepted or refused within a second (its network is there); a timeout or an unreachable
 * network is silence.
 */
export function isolationAddress(server: string): { answers(): Promise<boolean> } {
  const url = new URL(server);
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    answers: () =>
      new Promise((resolve) => {
        const socket = connect({ host, port, timeout: 1000 });
        const done = (answered: boolean) => {
          socket.destroy();
          resolve(answered);
        };
        socket.once('connect', () => done(true));
        socket.once('timeout', () => done(false));
        socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED'));
      }),
  };
}

/** The agent's watchdog, started (it watches at once if the kept settings say so). */
export async function startHaWatchdog(options: {
  driver: QemuDriver;
  stateDir: string;
  storageRoots: string[];
  /** The command that runs `zenith agent-sentinel` (none: no fencing sentinel). */
  sentinelCommand?: string[] | undefined;
  /** The control plane's URL: its host is the isolation address. */
  server?: string;
  clock: Clock;
  logger: Logger;
}): Promise<HaWatchdog> {
  const host = (await options.driver.discover()).objects.find((o) => o.kind === 'host');
  const watchdog = new HaWatchdog({
    hostName: host?.name ?? 'localhost',
    storageRoots: options.storageRoots,
    vms: qemuHaControl(options.driver),
    storage: heartbeatFiles,
    state: haStateFile(options.stateDir),
    clock: options.clock,
    logger: options.logger,
    ...(options.server ? { network: isolationAddress(options.server) } : {}),
    ...(options.sentinelCommand
      ? {
          sentinel: new HaSentinelLink({
            stateDir: options.stateDir,
            command: options.sentinelCommand,
            logger: options.logger,
          }),
        }
      : {}),
  });
  watchdog.start();
  return watchdog;
}

/**
 * Tells the watchdog about one open channel: heard on every message and pong, pinged every
 * heartbeat. Answers the function to call when the channel closes.
 */
export function watchChannel(watchdog: HaWatchdog, socket: WebSocket, clock: Clock): () => void {
  const heard = () => watchdog.channelHeard();
  const stopped = new AbortController();
  watchdog.channelOpened();
  socket.on('message', heard);
  socket.on('pong', heard);
  (async () => {
    while (!stopped.signal.aborted) {
      await clock.sleep(watchdog.heartbeatMs, stopped.signal);
      if (socket.readyState === socket.OPEN) socket.ping();
    }
  })().catch(() => undefined);
  return () => {
    stopped.abort();
    socket.off('message', heard);
    socket.off('pong', heard);
    watchdog.channelClosed();
  };
}
