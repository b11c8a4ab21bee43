/**
 * What the agent and its fencing sentinel (ha-sentinel.ts) share: three small files in
 * `<stateDir>/ha-sentinel/` on the host's own disk.
 *
 * - `feed.json`, written by the agent every heartbeat: which QEMUs to kill, and how long from now
 *   unless it is written again. The sentinel notices a new feed by its `boot`/`seq`.
 * - `sentinel.json`, written by the sentinel: its process id and start time. One sentinel per
 *   state directory: a second one finds a live first one here and leaves.
 * - `fenced.json`, written by the sentinel when it killed QEMUs: the agent takes it (and removes
 *   it) to list those VMs as released in its heartbeat.
 *
 * Process identity is a pid and its start time (/proc/PID/stat), so a pid reused by another
 * process is never taken for a sentinel or a QEMU.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const sentinelDirName = 'ha-sentinel';

/** A QEMU the sentinel kills when it is not fed in time. */
export interface SentinelVm {
  name: string;
  uuid: string | null;
  pid: number;
  /** Its start time (/proc/PID/stat, clock ticks since boot); null where /proc is missing. */
  startTime: string | null;
  /** Listed as released once killed (a VM with a UUID, not half of a migration). */
  release: boolean;
}

export interface SentinelFeed {
  format: 1;
  /** Random per agent start, with `seq`: a new feed is one with another boot or seq. */
  boot: string;
  seq: number;
  /** The agent's process id, for the logs. */
  agentPid: number;
  /**
   * When to kill the VMs unless a newer feed comes, on the host's monotonic clock
   * (monotonicMs(): the same for every process of the host, unmoved by changes of the wall clock),
   * so a feed read late — a sentinel just started, or starved of CPU — does not kill late.
   */
  killAt: number;
  vms: SentinelVm[];
  /** The agent stopped on purpose or HA is off: the sentinel kills nothing and ends. */
  standDown: boolean;
}

export interface SentinelRecord {
  pid: number;
  startTime: string | null;
}

/** What the sentinel did, for the agent (wall-clock milliseconds). */
export interface SentinelFencing {
  fencedAt: number;
  vms: Array<{ name: string; uuid: string | null; pid: number; release: boolean }>;
}

export function sentinelPaths(stateDir: string): {
  dir: string;
  feed: string;
  record: string;
  fenced: string;
  log: string;
} {
  const dir = join(stateDir, sentinelDirName);
  return {
    dir,
    feed: join(dir, 'feed.json'),
    record: join(dir, 'sentinel.json'),
    fenced: join(dir, 'fenced.json'),
    log: join(dir, 'sentinel.log'),
  };
}

/** The host's monotonic clock (CLOCK_MONOTONIC) in milliseconds: one for all its processes. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** A process's start time (clock ticks since boot), or null when it is gone or /proc is missing. */
export function processStartTime(pid: number): string | null {
  try {
    // "pid (comm) state ppid …": the command may hold spaces and parentheses; starttime is field 22.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? null : (fields[19] ?? null);
  } catch {
    return null;
  }
}

/** Whether the process runs and is the one recorded (same start time where /proc tells). */
export function sameProcess(pid: number, startTime: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const now = processStartTime(pid);
  return startTime === null || now === startTime;
}

/** Writes a small JSON file atomically (a temporary file renamed over it). */
export function writeJsonAtomically(file: string, value: unknown): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const next = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(next, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    renameSync(next, file);
  } catch (error) {
    rmSync(next, { force: true });
    throw error;
  }
}

/** A JSON file's value, or null when it is absent or not JSON (being replaced, or damaged). */
export function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The sentinel that runs for this state directory, or null. */
export function runningSentinel(stateDir: string): SentinelRecord | null {
  const record = readJson<SentinelRecord>(sentinelPaths(stateDir).record);
  return record && typeof record.pid === 'number' && sameProcess(record.pid, record.startTime)
    ? record
    : null;
}
