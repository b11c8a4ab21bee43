/**
 * The host's fencing sentinel (`zenith agent-sentinel`): a small process of its own that the agent
 * starts and feeds every heartbeat, the agent's equivalent of Proxmox's watchdog-mux. The
 * watchdog inside the agent (ha-watchdog.ts) cannot fence once the agent process itself is gone,
 * while its QEMUs, detached, run on; the sentinel outlives the agent and kills them — only the
 * QEMUs the agent last listed — when it is not fed before the time the last feed allowed, which
 * the agent sets before the control plane may restart them elsewhere. A restarted agent feeds it
 * again in time, and nothing is killed.
 *
 * What it killed goes to `fenced.json`, for the agent to list as released. A feed that says
 * `standDown` (the agent stopped on purpose, or HA is off) ends it without killing anything; so
 * does its work being done (the feed expired and none of its QEMUs runs any more).
 */
import { existsSync, linkSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../core/logger.js';
import {
  monotonicMs,
  processStartTime,
  readJson,
  sameProcess,
  sentinelPaths,
  writeJsonAtomically,
  type SentinelFeed,
  type SentinelFencing,
  type SentinelRecord,
  type SentinelVm,
} from './ha-sentinel-files.js';

/** How often the sentinel reads its feed and checks its deadline. */
export const sentinelPollMs = 100;

/** The sentinel's decisions, on the host's monotonic clock (pure: tested alone). */
export class SentinelState {
  #lastFeed: string | null = null;
  #armed: { deadline: number; vms: SentinelVm[] } | null = null;
  readonly #killed = new Set<string>();
  #standDown = false;

  get standingDown(): boolean {
    return this.#standDown;
  }

  /** A feed read; answers whether it was a new one. */
  observe(feed: SentinelFeed): boolean {
    const key = `${feed.boot}:${feed.seq}`;
    if (key === this.#lastFeed) return false;
    this.#lastFeed = key;
    if (feed.standDown) {
      this.#standDown = true;
      this.#armed = null;
      return true;
    }
    this.#standDown = false;
    this.#armed = { deadline: feed.killAt, vms: feed.vms };
    return true;
  }

  /** The VMs to kill now: those of the last feed once its deadline passed, each once. */
  due(now: number): SentinelVm[] {
    const armed = this.#armed;
    if (!armed || now < armed.deadline) return [];
    const victims = armed.vms.filter((vm) => !this.#killed.has(identity(vm)));
    for (const vm of victims) this.#killed.add(identity(vm));
    return victims;
  }

  /**
   * Its work is done: the last feed expired and none of its QEMUs runs any more (killed, or gone
   * by themselves). A restarted agent starts another sentinel.
   */
  done(now: number, alive: (vm: SentinelVm) => boolean): boolean {
    const armed = this.#armed;
    return armed !== null && now >= armed.deadline && !armed.vms.some(alive);
  }
}

const identity = (vm: SentinelVm) => `${vm.pid}:${vm.startTime ?? ''}`;

/**
 * Takes the state directory's sentinel record for this process: false when another live sentinel
 * holds it. The record is written whole, then linked into place (which fails if one exists).
 */
export function claimSentinelRecord(stateDir: string, self: SentinelRecord): boolean {
  const { record } = sentinelPaths(stateDir);
  const mine = `${record}.${self.pid}.tmp`;
  writeJsonAtomically(mine, self);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, record);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const held = readJson<SentinelRecord>(record);
        if (held && held.pid !== self.pid && sameProcess(held.pid, held.startTime)) return false;
        rmSync(record, { force: true });
      }
    }
    return false;
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Removes the record if it is still this process's. */
function releaseSentinelRecord(stateDir: string, self: SentinelRecord): void {
  const { record } = sentinelPaths(stateDir);
  if (readJson<SentinelRecord>(record)?.pid === self.pid) rmSync(record, { force: true });
}

export interface SentinelOptions {
  stateDir: string;
  logger: Logger;
  /** The host's monotonic clock in milliseconds, as the agent's feeds use it (default: monotonicMs). */
  now?: () => number;
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * The sentinel process's life: claim the state directory (or leave if another sentinel has it),
 * then read the feed and check the deadline every pollMs until told to stand down. Reading never
 * holds the deadline back: a read that hangs (the disk) leaves the last feed armed.
 */
export async function runSentinel(options: SentinelOptions): Promise<void> {
  const { stateDir, logger } = options;
  const now = options.now ?? monotonicMs;
  const pollMs = options.pollMs ?? sentinelPollMs;
  const paths = sentinelPaths(stateDir);
  const self: SentinelRecord = { pid: process.pid, startTime: processStartTime(process.pid) };
  if (!claimSentinelRecord(stateDir, self)) {
    logger.info({ stateDir }, 'ha sentinel: another sentinel watches this host; leaving');
    return;
  }
  logger.info({ stateDir, pid: process.pid }, 'ha sentinel: watching');
  const state = new SentinelState();
  let reading = false;
  const read = () => {
    if (reading) return;
    reading = true;
    readFile(paths.feed, 'utf8')
      .then((text) => {
        const feed = JSON.parse(text) as SentinelFeed;
        if (feed.format !== 1 || !Array.isArray(feed.vms)) return;
        if (state.observe(feed) && feed.standDown)
          logger.info({ agentPid: feed.agentPid }, 'ha sentinel: told to stand down');
      })
      .catch(() => undefined) // absent, or being replaced: the last feed stays armed
      .finally(() => {
        reading = false;
      });
  };
  try {
    while (!options.signal?.aborted && !state.standingDown) {
      read();
      const victims = state.due(now());
      if (victims.length > 0) fence(victims, stateDir, logger);
      if (state.done(now(), (vm) => sameProcess(vm.pid, vm.startTime))) {
        logger.info('ha sentinel: not fed, and no VM it guarded runs: leaving');
        break;
      }
      // The agent's state directory removed: nothing of the agent is left to guard for.
      if (!existsSync(stateDir)) break;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  } finally {
    releaseSentinelRecord(stateDir, self);
  }
}

/** SIGKILL to each listed QEMU still the same process, then the record for the agent. */
function fence(victims: SentinelVm[], stateDir: string, logger: Logger): void {
  const killed: SentinelFencing['vms'] = [];
  for (const vm of victims) {
    if (!sameProcess(vm.pid, vm.startTime)) continue; // gone already (or the pid is another's now)
    try {
      process.kill(vm.pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
        logger.error({ vm: vm.name, pid: vm.pid, err: error }, 'ha sentinel: could not kill');
        continue;
      }
    }
    killed.push({ name: vm.name, uuid: vm.uuid, pid: vm.pid, release: vm.release });
    logger.error(
      { vm: vm.name, uuid: vm.uuid, pid: vm.pid },
      'ha sentinel: the agent did not feed it in time; killed the VM',
    );
  }
  if (killed.length === 0) return;
  const { fenced } = sentinelPaths(stateDir);
  const earlier = readJson<SentinelFencing>(fenced);
  try {
    writeJsonAtomically(fenced, {
      fencedAt: Date.now(),
      vms: [...(earlier?.vms ?? []), ...killed],
    } satisfies SentinelFencing);
  } catch (error) {
    logger.error({ err: error }, 'ha sentinel: could not record what it killed');
  }
}
