/**
 * The recovery host's end of synchronous replication: one `qemu-storage-daemon` per protected
 * disk, serving over NBD (TCP, TLS with a pre-shared key) a new qcow2 overlay of the newest ready
 * replica point, writable, for the source QEMU's write-blocking mirror (sync-mirror-source.ts).
 *
 * The daemon is started detached, as VMs' QEMUs are (qemu-vm.ts): it outlives the agent that
 * started it. Its directory holds a state file (pid, QMP socket, address, live overlay) from
 * which a restarted agent finds it again (`findReplicaDaemon`), the PSK directory, its pid file
 * and its log. A point in time is taken inside the daemon with QMP `blockdev-snapshot`: a new
 * overlay goes on top of the live one and takes the export (and every later write) with it; the
 * live one, frozen, is the point — base ← … ← point, crash-consistent, and every write the
 * source's guest saw complete before the snapshot is in it (the mirror blocks the guest's write
 * until the daemon acknowledged it, and the snapshot drains what is in flight). An old point is
 * folded into the image under it inside the daemon too (replica-point-fold.ts): the daemon holds
 * the chain open, and no other process may write it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { systemClock, type Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { processAlive } from '../../core/process.js';
import { connectQmp, type QmpClient } from '../../protocols/qmp/index.js';
import { syncDirectory } from './image-writer.js';
import { createImage } from './qemu-img.js';
import { foldPoint } from './replica-point-fold.js';
import { writePskDir, type PskCredentials } from './tls-psk.js';

export interface ReplicaDaemonOptions {
  /** The daemon's own directory (state file, PSK directory, pid file, log); one per protected disk. */
  dir: string;
  /** The newest ready replica point (qcow2): the new overlay's backing image. */
  base: string;
  /** The overlay to create on top of `base`, which the mirror writes. Must not exist. */
  overlay: string;
  /** The address the NBD server listens on (the recovery host's replication address). */
  host: string;
  port: number;
  /** The replication's key; the source presents the same identity and key. */
  psk: PskCredentials;
  /** Default `disk0`. */
  exportName?: string;
  /**
   * Flush the overlay to stable storage before acknowledging each write (the export's
   * `writethrough`): the replica then survives a power loss of the recovery host too, at a cost
   * in write latency. Default false: a write is acknowledged once the daemon holds it (it
   * survives the daemon's and the source site's loss, not the recovery host's power loss).
   */
  writethrough?: boolean;
  /** Default `qemu-storage-daemon`. */
  binary?: string;
  /**
   * A command the daemon is run under, which must exec it in place (same process id): e.g.
   * `['ip', 'netns', 'exec', NS]` for a recovery host's network namespace in a lab.
   */
  launcher?: string[];
  clock?: Clock;
}

/** What the state file keeps: enough for a restarted agent to find and stop the daemon. */
export interface ReplicaDaemonState {
  pid: number;
  qmpSocket: string;
  host: string;
  port: number;
  exportName: string;
  base: string;
  /** The live overlay (the export's top) as last recorded; QEMU's own view wins when they differ. */
  overlay: string;
  startedAt: string;
}

/** A point taken: the frozen image (the point) and the new live overlay on top of it. */
export interface ReplicaPoint {
  point: string;
  overlay: string;
  takenAt: string;
}

export interface ReplicaDaemon {
  readonly dir: string;
  /** As recorded in the state file (updated by every point). */
  readonly state: ReplicaDaemonState;
  /** Whether its process still runs. */
  running(): boolean;
  /** Freezes the live overlay as a point; `newOverlay` (must not exist) takes the writes from now on. */
  takePoint(newOverlay: string): Promise<ReplicaPoint>;
  /**
   * Folds the point `overlay` into `backing`, the image directly under it (replica-point-fold.ts):
   * done already when `overlay` is gone or out of the chain. ZEN_INVALID_STATE for another pair,
   * ZEN_DISK_IN_USE when another process holds an image open, ZEN_TIMEOUT past `timeoutMs`
   * (default 9 minutes; the fold goes on in the daemon).
   */
  mergePoint(overlay: string, backing: string, options?: { timeoutMs?: number }): Promise<void>;
  /** QMP `quit`, then SIGKILL once `deadlineMs` (default 5 s) passed; its state and key are removed. */
  stop(options?: { deadlineMs?: number }): Promise<void>;
  /** Closes this process's QMP connection; the daemon runs on (found again with `findReplicaDaemon`). */
  release(): Promise<void>;
}

const STATE_FILE = 'replica-daemon.json';
const EXPORT_ID = 'zenith-replica';
const NODE = { top: 'zenith-top-', file: 'zenith-file-' } as const;

/** Unix socket paths are limited to 108 bytes: the QMP socket lives in a short directory. */
function qmpSocketOf(dir: string): string {
  const base = existsSync('/run') ? '/run/zenith/sync' : join(tmpdir(), 'zenith-sync');
  mkdirSync(base, { recursive: true, mode: 0o700 });
  return join(base, `${createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 16)}.qmp`);
}

function saveState(dir: string, state: ReplicaDaemonState): void {
  const file = join(dir, STATE_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

function readState(dir: string): ReplicaDaemonState | null {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ReplicaDaemonState;
  } catch {
    return null;
  }
}

/** Its pid still names this daemon (not a process that took the pid since): its command line holds our socket. */
function isOurDaemon(state: ReplicaDaemonState): boolean {
  if (!processAlive(state.pid)) return false;
  try {
    return readFileSync(`/proc/${state.pid}/cmdline`, 'utf8').includes(state.qmpSocket);
  } catch {
    return false;
  }
}

function removeTraces(dir: string, state: ReplicaDaemonState | null): void {
  rmSync(join(dir, STATE_FILE), { force: true });
  rmSync(join(dir, 'psk'), { recursive: true, force: true });
  rmSync(join(dir, 'daemon.pid'), { force: true });
  if (state) rmSync(state.qmpSocket, { force: true });
}

/** A QEMU option value: commas doubled. */
const value = (text: string) => text.replaceAll(',', ',,');

export async function startReplicaDaemon(options: ReplicaDaemonOptions): Promise<ReplicaDaemon> {
  const clock = options.clock ?? systemClock;
  const dir = resolve(options.dir);
  const base = resolve(options.base);
  const overlay = resolve(options.overlay);
  const exportName = options.exportName ?? 'disk0';
  const previous = readState(dir);
  if (previous && isOurDaemon(previous))
    throw new ZenithError(
      'ZEN_CONFLICT',
      `a replica daemon runs already for ${dir} (pid ${previous.pid}): find it, or stop it first`,
      { dir, pid: previous.pid },
    );
  removeTraces(dir, previous);
  if (!existsSync(base))
    throw new ZenithError('ZEN_NOT_FOUND', `the replica point ${base} is not there`, {
      file: base,
    });
  if (existsSync(overlay))
    throw new ZenithError(
      'ZEN_CONFLICT',
      `${overlay} exists: a new overlay never replaces an image`,
      { file: overlay },
    );
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pskDir = writePskDir(join(dir, 'psk'), options.psk);
  await createImage(overlay, { backingFile: base, backingFormat: 'qcow2' });
  const qmpSocket = qmpSocketOf(dir);
  rmSync(qmpSocket, { force: true });
  // In the order QEMU applies them: the export is up by the time the QMP socket appears.
  const args = [
    '--object',
    `tls-creds-psk,id=zenith-psk,endpoint=server,dir=${value(pskDir)}`,
    '--blockdev',
    `driver=file,node-name=${NODE.file}0,filename=${value(overlay)}`,
    '--blockdev',
    `driver=qcow2,node-name=${NODE.top}0,file=${NODE.file}0`,
    '--nbd-server',
    `addr.type=inet,addr.host=${value(options.host)},addr.port=${options.port},tls-creds=zenith-psk`,
    '--export',
    `type=nbd,id=${EXPORT_ID},node-name=${NODE.top}0,name=${value(exportName)},writable=on,writethrough=${options.writethrough ? 'on' : 'off'}`,
    '--chardev',
    `socket,id=zenith-qmp,path=${value(qmpSocket)},server=on,wait=off`,
    '--monitor',
    'chardev=zenith-qmp',
    '--pidfile',
    join(dir, 'daemon.pid'),
  ];
  const logFile = join(dir, 'daemon.log');
  const log = openSync(logFile, 'w', 0o600);
  // Detached and unreferenced: the replica must outlive the agent that started it.
  const [command, ...prefix] = [
    ...(options.launcher ?? []),
    options.binary ?? 'qemu-storage-daemon',
  ];
  const child = spawn(command, [...prefix, ...args], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.once('exit', (code) => (exitCode = code));
  child.once('error', () => (exitCode ??= -1));
  child.unref();
  const failed = (reason: string) => {
    if (exitCode === undefined) child.kill('SIGKILL');
    rmSync(overlay, { force: true });
    removeTraces(dir, null);
    rmSync(qmpSocket, { force: true });
    const output = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000).trim() : '';
    return new ZenithError(
      'ZEN_DRIVER_ERROR',
      `qemu-storage-daemon did not start: ${output || reason}`,
      { output, exitCode, port: options.port },
    );
  };
  const deadline = clock.now() + 15_000;
  while (!existsSync(qmpSocket)) {
    if (exitCode !== undefined) throw failed(`exit code ${exitCode}`);
    if (clock.now() > deadline) throw failed('no QMP socket in 15 s');
    await clock.sleep(20);
  }
  const state: ReplicaDaemonState = {
    pid: child.pid!,
    qmpSocket,
    host: options.host,
    port: options.port,
    exportName,
    base,
    overlay,
    startedAt: new Date(clock.now()).toISOString(),
  };
  let qmp: QmpClient;
  try {
    qmp = await connectWithRetry(qmpSocket, clock, () => exitCode === undefined);
  } catch (error) {
    throw failed((error as Error).message);
  }
  saveState(dir, state);
  return new Daemon(dir, state, qmp, clock);
}

/**
 * The daemon of this directory if it still runs (after a restart of the agent), connected to its
 * QMP socket; null when there is none (what a dead one left is removed).
 */
export async function findReplicaDaemon(
  dir: string,
  options: { clock?: Clock } = {},
): Promise<ReplicaDaemon | null> {
  const clock = options.clock ?? systemClock;
  const state = readState(resolve(dir));
  if (!state) return null;
  if (!isOurDaemon(state)) {
    removeTraces(resolve(dir), state);
    return null;
  }
  const qmp = await connectWithRetry(state.qmpSocket, clock, () => processAlive(state.pid));
  const daemon = new Daemon(resolve(dir), state, qmp, clock);
  await daemon.settle();
  return daemon;
}

async function connectWithRetry(
  socket: string,
  clock: Clock,
  running: () => boolean,
): Promise<QmpClient> {
  // The socket file appears at bind(), a moment before the daemon listens.
  for (let attempt = 0; ; attempt++) {
    try {
      return await connectQmp(socket, { clock });
    } catch (error) {
      if (attempt >= 100 || !running()) throw error;
      await clock.sleep(50);
    }
  }
}

class Daemon implements ReplicaDaemon {
  #state: ReplicaDaemonState;

  constructor(
    readonly dir: string,
    state: ReplicaDaemonState,
    private readonly qmp: QmpClient,
    private readonly clock: Clock,
  ) {
    this.#state = state;
  }

  get state(): ReplicaDaemonState {
    return { ...this.#state };
  }

  running(): boolean {
    return isOurDaemon(this.#state);
  }

  /** The export's top node and its file, as QEMU has them. */
  async #top(): Promise<{ node: string; file: string; index: number }> {
    const exported = (await this.qmp.execute('query-block-exports')).find(
      (e) => e.id === EXPORT_ID,
    );
    const node = exported?.['node-name'];
    const index = node?.startsWith(NODE.top) ? Number(node.slice(NODE.top.length)) : NaN;
    const info = (await this.qmp.execute('query-named-block-nodes', { flat: true })).find(
      (n) => n['node-name'] === node,
    );
    if (!node || !Number.isInteger(index) || !info)
      throw new ZenithError('ZEN_DRIVER_ERROR', 'the replica daemon exports none of its overlays', {
        dir: this.dir,
      });
    return { node, file: info.file, index };
  }

  /** After a restart: records the live overlay QEMU has (a point taken as the agent died). */
  async settle(): Promise<void> {
    const top = await this.#top();
    if (top.file !== this.#state.overlay) {
      this.#state = { ...this.#state, overlay: top.file };
      saveState(this.dir, this.#state);
    }
  }

  async takePoint(newOverlay: string): Promise<ReplicaPoint> {
    const next = resolve(newOverlay);
    if (existsSync(next))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${next} exists: a new overlay never replaces an image`,
        {
          file: next,
        },
      );
    const top = await this.#top();
    await createImage(next, { backingFile: top.file, backingFormat: 'qcow2' });
    const node = `${NODE.top}${top.index + 1}`;
    try {
      await this.qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': node,
        file: { driver: 'file', filename: next },
        // Its backing is set by the snapshot (the header names it already, for later opens).
        backing: null,
      });
    } catch (error) {
      rmSync(next, { force: true });
      throw error;
    }
    try {
      // Drains what is in flight, then moves the export (and every parent) onto the new node.
      await this.qmp.execute('blockdev-snapshot', { node: top.node, overlay: node });
    } catch (error) {
      await this.qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
      rmSync(next, { force: true });
      throw error;
    }
    const takenAt = new Date(this.clock.now()).toISOString();
    // The point is a point once its bytes are on stable storage, whatever the export's caching.
    for (const file of [top.file, next]) {
      const fd = openSync(file, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    await syncDirectory(dirname(next));
    this.#state = { ...this.#state, overlay: next };
    saveState(this.dir, this.#state);
    return { point: top.file, overlay: next, takenAt };
  }

  async mergePoint(
    overlay: string,
    backing: string,
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    await foldPoint(this.qmp, {
      overlay,
      backing,
      top: await this.#top(),
      clock: this.clock,
      timeoutMs: options.timeoutMs ?? 9 * 60_000,
    });
  }

  async stop(options: { deadlineMs?: number } = {}): Promise<void> {
    const { pid } = this.#state;
    // Released before (or its connection lost): a connection of its own to say quit.
    const qmp =
      this.qmp.state === 'ready' || !isOurDaemon(this.#state)
        ? this.qmp
        : await connectQmp(this.#state.qmpSocket, { clock: this.clock }).catch(() => this.qmp);
    await qmp.execute('quit').catch(() => undefined);
    await qmp.close();
    await this.qmp.close();
    const deadline = this.clock.now() + (options.deadlineMs ?? 5000);
    while (isOurDaemon(this.#state) && this.clock.now() < deadline) await this.clock.sleep(20);
    if (isOurDaemon(this.#state)) process.kill(pid, 'SIGKILL');
    while (processAlive(pid) && this.clock.now() < deadline + 5000) await this.clock.sleep(20);
    removeTraces(this.dir, this.#state);
  }

  async release(): Promise<void> {
    await this.qmp.close();
  }
}
