/**
 * One QEMU VM the driver owns: its record on disk, its QEMU process (started
 * detached, so it outlives the agent or control plane), and its QMP
 * connection, through which state changes arrive as events.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { processAlive } from '../../core/process.js';
import {
  connectQmp,
  type QmpClient,
  type QmpRunState,
  type QmpShutdownCause,
} from '../../protocols/qmp/index.js';
import type { PowerState, StopCause } from '../driver.js';
import { buildCommandLine, type RuntimePaths } from './command-line.js';
import { nicWiring, tapsOf, type NicWiring } from './nic-names.js';
import { createTaps, removeTaps } from './tap-devices.js';
import type { QemuVmSpec } from './vm-spec.js';

export interface VmRecord {
  id: string;
  spec: QemuVmSpec;
  createdAt: number;
  /** What the operator last asked for: lets a restart tell a crash from a stop. */
  desired: 'running' | 'stopped';
  /** Set while a live migration into this host is under way; a record still marked after a restart is discarded. */
  incoming?: boolean;
  /** A storage migration into this host: the disks made for it (removed if it fails). */
  incomingStorage?: boolean;
  incomingDisks?: string[];
  /** The VM's power state at the source of an incoming migration. */
  sourcePowerState?: PowerState;
  /**
   * Set while a live migration away from this host is under way (a restarted agent settles it):
   * whether the disks go too, and the power state it left (a VM taken back returns to it).
   */
  outgoing?: { withStorage: boolean; powerState?: PowerState };
  /** Its snapshots (qemu-snapshots.ts), oldest first; they travel with the record when it migrates. */
  snapshots?: SnapshotRecord[];
  /** Why and when (ms since the epoch) its QEMU last ended; cleared when it starts again. */
  lastStop?: { cause: StopCause; at: number };
}

/** A snapshot as the driver keeps it: its id is also its tag inside every qcow2 disk. */
export interface SnapshotRecord {
  id: string;
  name: string;
  createdAt: number;
  /** The power state the VM returns to when reverted: running and suspended ones hold its memory. */
  powerState: PowerState;
  /** Whether the guest's memory and device state were saved (the VM's QEMU ran). */
  withMemory: boolean;
}

export interface QemuVmDeps {
  binary: string;
  /** The owning driver's key (a hash of its state directory): part of every tap's name. */
  hostKey: string;
  clock: Clock;
  logger: Logger;
  accelerator: (spec: QemuVmSpec) => 'kvm' | 'tcg';
  onChange: (vm: QemuVm) => void;
}

const alive = processAlive;

/**
 * Zenith's power state for a QEMU run state. restore-vm and prelaunch hold a
 * loaded snapshot waiting for `cont` (after a failed load, or a load into a
 * QEMU started with -S: see qemu-snapshots.ts): suspended.
 */
function powerOf(status: QmpRunState): PowerState {
  switch (status) {
    case 'running':
      return 'running';
    case 'paused':
    case 'suspended':
    case 'restore-vm':
    case 'prelaunch':
      return 'suspended';
    case 'shutdown':
      return 'stopped';
    default:
      return 'paused';
  }
}

/** The cause of a stop QEMU announced with SHUTDOWN (qapi ShutdownCause), Zenith's way. */
function shutdownCause(data: { guest: boolean; reason: QmpShutdownCause }): StopCause {
  switch (data.reason) {
    case 'guest-shutdown':
      return 'guest-shutdown';
    case 'guest-panic':
      return 'guest-panic';
    case 'host-qmp-quit':
    case 'host-ui':
      return 'requested';
    case 'host-signal':
      return 'killed';
    default:
      // host-error, or a reset turned into a stop: QEMU ended without being asked to.
      return 'crashed';
  }
}

/** The words of power.reason for a stop nobody asked for. */
function reasonOf(cause: StopCause): string {
  switch (cause) {
    case 'guest-shutdown':
      return 'the guest powered itself off';
    case 'guest-panic':
      return 'the guest panicked (reported through pvpanic) and was powered off';
    case 'killed':
      return 'its QEMU process exited on a signal sent on the host';
    case 'fenced':
      return 'high availability killed its QEMU process (fencing)';
    case 'requested':
      return 'it was turned off';
    case 'crashed':
      return 'its QEMU process exited';
  }
}

export class QemuVm {
  power: PowerState = 'stopped';
  /** Why the VM is in its state when it was not asked for (e.g. its QEMU died). */
  reason: string | null = null;
  pid: number | null = null;
  /** Resets the guest made itself (reboot, panic, triple fault) since its QEMU process started. */
  guestResets = 0;
  /** The last of those: when, and QEMU's reason (e.g. guest-reset, guest-panic). */
  lastGuestReset: { at: string; reason: string } | null = null;
  /** Receiving a live migration: not reported until the switch-over, so the VM is never seen on two hosts. */
  incoming = false;
  /** Its QEMU is being started (no pid yet): the VM is not a stale definition to discard. */
  starting = false;
  /** Sending a live migration: its passing states (paused for the switch-over) are not reported. */
  outgoing = false;
  /** The switch-over is done: the VM runs on the destination and is no longer reported here. */
  departed = false;
  /** Taking or loading a snapshot: the guest's passing pause is not reported, only the state after. */
  snapshotting = false;
  #qmp: QmpClient | undefined;
  /** Zenith is turning it off (power-off, or the power button and then power-off): a requested stop. */
  #stopRequested = false;
  /** What QEMU said before its QMP socket closed (SHUTDOWN, GUEST_PANICKED): why it ends. */
  #endingCause: StopCause | undefined;
  /** The taps being removed: a start waits for it, so an old removal never takes a new tap. */
  #releasing: Promise<void> | undefined;

  constructor(
    public record: VmRecord,
    readonly dir: string,
    readonly paths: RuntimePaths,
    private readonly deps: QemuVmDeps,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Each NIC's MAC and, when bridged, its tap on this host. */
  get nics(): NicWiring[] {
    return nicWiring(this.record.spec, this.id, this.deps.hostKey);
  }

  /** The names of the taps of its bridged NICs (they exist while its QEMU runs). */
  get tapNames(): string[] {
    return tapsOf(this.record.spec, this.id, this.deps.hostKey).map((tap) => tap.name);
  }

  save(): void {
    // Write and rename: a crash leaves the old record or the new one, never half of one.
    const file = join(this.dir, 'vm.json');
    writeFileSync(`${file}.tmp`, `${JSON.stringify(this.record, null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
  }

  /** After a restart: finds the VM's QEMU if it still runs and re-attaches to its QMP socket. */
  async attach(): Promise<void> {
    const pid = existsSync(this.paths.pidFile)
      ? Number(readFileSync(this.paths.pidFile, 'utf8').trim())
      : NaN;
    if (Number.isInteger(pid) && pid > 0 && alive(pid) && existsSync(this.paths.qmpSocket)) {
      this.pid = pid;
      await this.#connect();
      return;
    }
    this.pid = null;
    this.power = 'stopped';
    const seen = this.record.lastStop;
    if (seen) {
      // Seen before the restart (or at an earlier attach): the same stop, not a new one.
      if (seen.cause !== 'requested') this.reason = reasonOf(seen.cause);
    } else if (this.record.desired === 'running') {
      this.reason = 'its QEMU process exited while nobody watched (crash, kill or host reboot)';
      this.#noteStop('crashed');
    }
    await this.releaseNetwork();
  }

  /** Why and when its QEMU last ended (undefined while it runs, or when nothing was recorded). */
  get lastStop(): { cause: StopCause; at: number } | undefined {
    return this.record.lastStop;
  }

  /** Zenith turns it off now (the power button, an isolation response, fencing): not a crash. */
  expectStop(cause: Extract<StopCause, 'requested' | 'fenced'> = 'requested'): void {
    if (cause === 'fenced') this.#noteStop('fenced');
    this.#stopRequested = true;
  }

  /** Records the first cause seen for this stop (a later one, e.g. the socket closing, does not replace it). */
  #noteStop(cause: StopCause): void {
    if (this.record.lastStop) return;
    this.record.lastStop = { cause, at: this.deps.clock.now() };
    this.save();
  }

  async start(extraArgs: string[] = []): Promise<void> {
    if (this.pid !== null && alive(this.pid))
      throw new ZenithError('ZEN_INVALID_STATE', `${this.record.spec.name} is already running`);
    this.starting = true;
    try {
      await this.#start(extraArgs);
    } finally {
      this.starting = false;
    }
  }

  async #start(extraArgs: string[]): Promise<void> {
    rmSync(this.paths.qmpSocket, { force: true });
    rmSync(this.paths.agentSocket, { force: true });
    rmSync(this.paths.pidFile, { force: true });
    const nics = this.nics;
    const args = [
      ...buildCommandLine(
        this.record.spec,
        this.paths,
        this.deps.accelerator(this.record.spec),
        nics,
      ),
      ...extraArgs,
    ];
    await this.#releasing;
    await createTaps(nics.flatMap((nic) => (nic.tap ? [nic.tap] : [])));
    try {
      await this.#launch(args);
    } catch (error) {
      if (this.pid === null || !alive(this.pid)) await this.releaseNetwork();
      throw error;
    }
  }

  async #launch(args: string[]): Promise<void> {
    const log = openSync(join(this.dir, 'qemu.log'), 'w');
    // Detached and unreferenced: the VM must outlive whoever started it.
    const child = spawn(this.deps.binary, args, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    let exitCode: number | null | undefined;
    child.once('exit', (code) => (exitCode = code));
    child.unref();
    const deadline = this.deps.clock.now() + 15_000;
    while (!existsSync(this.paths.qmpSocket)) {
      if (exitCode !== undefined || this.deps.clock.now() > deadline) {
        if (exitCode === undefined) child.kill('SIGKILL');
        const output = readFileSync(join(this.dir, 'qemu.log'), 'utf8').slice(-2000);
        throw new ZenithError(
          'ZEN_DRIVER_ERROR',
          `QEMU did not start: ${output.trim() || `exit code ${exitCode}`}`,
          { exitCode, output },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.pid = child.pid ?? null;
    this.record.desired = 'running';
    delete this.record.lastStop;
    this.#stopRequested = false;
    this.#endingCause = undefined;
    this.reason = null;
    try {
      // Inside: a record that cannot be written (its directory removed under it) ends the start
      // too, with the QEMU killed — never a guest running that no record knows.
      this.save();
      await this.#connect(() => exitCode === undefined);
    } catch (error) {
      // QEMU made its socket and then failed (a kernel it cannot read, a busy device) or never
      // answered: nothing of this start may stay, or the VM would look running with a dead pid.
      if (exitCode === undefined) child.kill('SIGKILL');
      this.pid = null;
      this.power = 'stopped';
      rmSync(this.paths.qmpSocket, { force: true });
      rmSync(this.paths.pidFile, { force: true });
      let output = '';
      try {
        output = readFileSync(join(this.dir, 'qemu.log'), 'utf8').slice(-2000).trim();
        this.record.desired = 'stopped';
        this.save();
      } catch {
        // The VM's directory is gone: there is nothing left to write.
      }
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        `QEMU did not start: ${output || (error as Error).message}`,
        { exitCode, output },
        { cause: error },
      );
    }
  }

  async #connect(running: () => boolean = () => true): Promise<void> {
    // The socket file appears at bind(), a moment before QEMU listens: retry briefly.
    let qmp: QmpClient | undefined;
    for (let attempt = 0; !qmp; attempt++) {
      try {
        qmp = await connectQmp(this.paths.qmpSocket, { clock: this.deps.clock });
      } catch (error) {
        if (attempt >= 100 || !running()) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    this.#qmp = qmp;
    // #refresh catches and logs its own failures.
    const refresh = () => {
      this.#refresh().catch(() => undefined);
    };
    qmp.on('STOP', refresh);
    qmp.on('RESUME', refresh);
    qmp.on('RESET', (event) => {
      if (event.data.guest) {
        this.guestResets++;
        this.lastGuestReset = {
          at: new Date(this.deps.clock.now()).toISOString(),
          reason: event.data.reason,
        };
        this.deps.logger.info({ vm: this.id, reason: event.data.reason }, 'the guest reset itself');
      }
      refresh();
    });
    qmp.on('SHUTDOWN', (event) => {
      this.#endingCause ??= shutdownCause(event.data);
      refresh();
    });
    // QEMU's panic action (-action panic=shutdown, its default) powers the VM off after this.
    qmp.on('GUEST_PANICKED', (event) => {
      this.#endingCause = 'guest-panic';
      this.deps.logger.warn({ vm: this.id, action: event.data.action }, 'the guest panicked');
    });
    qmp.closed
      .then(() => {
        if (this.#qmp !== qmp) return;
        this.#qmp = undefined;
        this.pid = null;
        // The source of a migration ends because the VM runs elsewhere now: no stop of this VM.
        if (!this.departed && !this.incoming && !this.outgoing) {
          this.#noteStop(this.#stopRequested ? 'requested' : (this.#endingCause ?? 'crashed'));
          if (this.record.desired === 'running')
            this.reason = reasonOf(this.record.lastStop?.cause ?? 'crashed');
        }
        this.power = 'stopped';
        this.deps.onChange(this);
        return this.releaseNetwork();
      })
      .catch((error: unknown) =>
        this.deps.logger.error({ vm: this.id, err: error }, 'the end of its QEMU was not handled'),
      );
    await this.#refresh();
  }

  async #refresh(): Promise<void> {
    const qmp = this.#qmp;
    if (!qmp) return;
    try {
      const { status } = await qmp.execute('query-status');
      this.power = powerOf(status);
      this.deps.onChange(this);
    } catch (error) {
      this.deps.logger.debug({ vm: this.id, err: (error as Error).message }, 'status query failed');
    }
  }

  /** Re-reads the run state now (after a switch-over or a snapshot) and reports it. */
  async refreshNow(): Promise<void> {
    if (this.#qmp) await this.#refresh();
    else this.deps.onChange(this);
  }

  qmp(): QmpClient {
    if (!this.#qmp)
      throw new ZenithError('ZEN_INVALID_STATE', `${this.record.spec.name} is not running`, {
        powerState: this.power,
      });
    return this.#qmp;
  }

  /** Power off at once: QEMU quits; SIGKILL if it does not within 5 s. */
  async quit(): Promise<void> {
    const pid = this.pid;
    this.record.desired = 'stopped';
    if (pid !== null) this.expectStop();
    this.save();
    if (this.#qmp) {
      await this.#qmp.execute('quit').catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#qmp?.closed, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      // The timer must not outlive the wait: it would keep the process alive 5 s after the stop.
      clearTimeout(timer);
    }
    if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL');
    this.pid = null;
    this.power = 'stopped';
    this.reason = null;
    this.deps.onChange(this);
    await this.releaseNetwork();
  }

  /**
   * Removes the taps of its bridged NICs (call once its QEMU is gone). One
   * removal at a time; a failure is logged, not thrown: the next start or
   * re-attach removes what is left.
   */
  releaseNetwork(): Promise<void> {
    const names = this.tapNames;
    if (names.length === 0) return Promise.resolve();
    this.#releasing ??= removeTaps(names)
      .catch((error: unknown) =>
        this.deps.logger.warn(
          { vm: this.id, taps: names, err: (error as Error).message },
          'could not remove the taps of a stopped VM',
        ),
      )
      .finally(() => (this.#releasing = undefined));
    return this.#releasing;
  }

  /** Lets go of the QMP connection without touching QEMU (the VM keeps running). */
  async detach(): Promise<void> {
    const qmp = this.#qmp;
    this.#qmp = undefined;
    await qmp?.close();
  }
}
