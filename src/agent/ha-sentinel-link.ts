/**
 * The agent's side of its fencing sentinel (ha-sentinel.ts): starts one when none runs for its
 * state directory (detached, so it outlives the agent; a restarted agent finds it again by its
 * record), feeds it every heartbeat, tells it to stand down, and takes what it killed.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../core/logger.js';
import {
  monotonicMs,
  processStartTime,
  readJson,
  runningSentinel,
  sameProcess,
  sentinelPaths,
  writeJsonAtomically,
  type SentinelFeed,
  type SentinelFencing,
  type SentinelVm,
} from './ha-sentinel-files.js';

/** What the watchdog asks of a sentinel (ha-watchdog.ts; a fake in unit tests). */
export interface HaSentinelControl {
  /** Arms it: kill these QEMUs `killAfterMs` from now unless fed again. */
  feed(
    killAfterMs: number,
    vms: Array<{ name: string; uuid: string | null; pid: number; release: boolean }>,
  ): void;
  /** The agent stops on purpose, or HA is off: kill nothing, end. */
  standDown(): void;
  /** What it killed since last asked (removed once taken), or null. */
  takeFenced(): SentinelFencing | null;
}

export interface HaSentinelLinkOptions {
  stateDir: string;
  /** The command that runs `zenith agent-sentinel` (`--state-dir DIR` is added). */
  command: string[];
  logger: Logger;
}

export class HaSentinelLink implements HaSentinelControl {
  readonly #options: HaSentinelLinkOptions;
  readonly #paths: ReturnType<typeof sentinelPaths>;
  readonly #boot = randomUUID();
  #seq = 0;
  /** The one it started last, while it comes up (loading takes seconds on a busy host). */
  #starting: { pid: number; startTime: string | null } | null = null;

  constructor(options: HaSentinelLinkOptions) {
    this.#options = options;
    this.#paths = sentinelPaths(options.stateDir);
  }

  feed(
    killAfterMs: number,
    vms: Array<{ name: string; uuid: string | null; pid: number; release: boolean }>,
  ): void {
    const listed: SentinelVm[] = vms.map((vm) => ({ ...vm, startTime: processStartTime(vm.pid) }));
    // The feed first: a sentinel started now reads it at once.
    this.#write({ killAt: monotonicMs() + killAfterMs, vms: listed, standDown: false });
    this.#ensureRunning();
  }

  standDown(): void {
    if (!runningSentinel(this.#options.stateDir)) return;
    this.#write({ killAt: monotonicMs(), vms: [], standDown: true });
    this.#options.logger.info('ha: the fencing sentinel stands down');
  }

  takeFenced(): SentinelFencing | null {
    const fencing = readJson<SentinelFencing>(this.#paths.fenced);
    if (!fencing) return null;
    rmSync(this.#paths.fenced, { force: true });
    return fencing;
  }

  #write(feed: Pick<SentinelFeed, 'killAt' | 'vms' | 'standDown'>): void {
    this.#seq += 1;
    writeJsonAtomically(this.#paths.feed, {
      format: 1,
      boot: this.#boot,
      seq: this.#seq,
      agentPid: process.pid,
      ...feed,
    } satisfies SentinelFeed);
  }

  /** Starts a sentinel unless one runs (or the one it started is still coming up). */
  #ensureRunning(): void {
    if (runningSentinel(this.#options.stateDir)) {
      this.#starting = null;
      return;
    }
    if (this.#starting && sameProcess(this.#starting.pid, this.#starting.startTime)) return;
    mkdirSync(this.#paths.dir, { recursive: true, mode: 0o700 });
    const log = openSync(this.#paths.log, 'a', 0o600);
    try {
      const [command, ...args] = this.#options.command as [string, ...string[]];
      const child = spawn(command, [...args, '--state-dir', this.#options.stateDir], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.once('error', (error) =>
        this.#options.logger.error({ err: error }, 'ha: the fencing sentinel did not start'),
      );
      child.unref();
      this.#starting =
        child.pid === undefined ? null : { pid: child.pid, startTime: processStartTime(child.pid) };
      this.#options.logger.info({ pid: child.pid }, 'ha: started the fencing sentinel');
    } finally {
      closeSync(log);
    }
  }
}
