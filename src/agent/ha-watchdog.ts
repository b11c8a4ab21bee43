/**
 * The agent's side of high availability: once the control plane configures
 * it, the watchdog writes this host's storage heartbeat every heartbeatMs into
 * each storage root that holds a disk of one of its VMs, and watches two
 * things — whether the control plane is heard (the channel), whether the
 * heartbeat still reaches the storage — to act on its own when they fail:
 *
 * - isolated (channel down ≥ isolationSeconds, storage heartbeat still
 *   written, and the control plane's host silent on the network too: one
 *   that accepts or refuses a connection is down, not this host's network):
 *   the isolation response — leave the VMs running, shut them down (ACPI,
 *   then power-off after shutdownSeconds) or power them off — and every VM
 *   it turned off is listed as released in the heartbeat, so the control
 *   plane may run it elsewhere;
 * - cut off from both (channel down and no heartbeat written, each for
 *   ≥ selfFenceSeconds): self-fencing — every QEMU of the host is killed at
 *   once, so that a control plane which waits that long after losing both can
 *   restart the VMs elsewhere without a BMC.
 *
 * Pure logic over injected parts (clock, VM control, heartbeat storage, state
 * file): src/agent/ha-host.ts plugs in the real ones.
 */
import { randomUUID } from 'node:crypto';
import { resolve, sep } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { HaAgentSettings } from '../protocols/agent-channel/ha-values.js';
import type { HaHeartbeat } from '../protocols/ha-heartbeat.js';
import type { HaSentinelControl } from './ha-sentinel-link.js';

/** A VM of this host as the watchdog sees it. */
export interface HaLocalVm {
  id: string;
  name: string;
  uuid: string | null;
  /** Its QEMU process while one runs. */
  pid: number | null;
  /** Half of a migration (arriving, or gone away): killed when fencing, otherwise left alone. */
  transient: boolean;
  diskFiles: string[];
}

/** What the watchdog does to VMs (the QEMU driver in an agent; a fake in unit tests). */
export interface HaVmControl {
  vms(): HaLocalVm[];
  /** The ACPI power button, then power-off after timeoutMs; resolves once its QEMU is gone. */
  shutdown(id: string, timeoutMs: number): Promise<void>;
  /** Power off at once; resolves once its QEMU is gone. */
  powerOff(id: string): Promise<void>;
  /** SIGKILL, synchronously: nothing to wait for when the storage may hang. */
  kill(pid: number): void;
}

export interface HeartbeatStorage {
  write(root: string, heartbeat: HaHeartbeat): Promise<void>;
  /** This host's heartbeat in the root, or null. */
  read(root: string, hostName: string): Promise<HaHeartbeat | null>;
}

/** What the agent keeps across restarts (its state directory). */
export interface HaPersistedState {
  settings: HaAgentSettings;
  released: string[];
  fencedAt: number | null;
}

export interface HaStateFile {
  load(): HaPersistedState | null;
  save(state: HaPersistedState): void;
}

export interface HaWatchdogOptions {
  /** The host's name as its host object appears in the inventory (the heartbeat's file name). */
  hostName: string;
  storageRoots: string[];
  vms: HaVmControl;
  storage: HeartbeatStorage;
  state: HaStateFile;
  clock: Clock;
  logger: Logger;
  /**
   * The host's fencing sentinel, a process that outlives the agent (ha-sentinel.ts): fed every
   * beat, it kills the QEMUs if the agent dies and nothing feeds it before the self-fencing
   * deadline. None: nothing fences while the agent process is gone.
   */
  sentinel?: HaSentinelControl;
  /**
   * Whether the control plane's host answers on the network (a TCP connection to its address
   * accepted or refused; nothing, or unreachable, is silence), asked every beat while the channel
   * is down: the isolation address. None: isolation is judged by the channel alone.
   */
  network?: { answers(): Promise<boolean> };
}

export interface HaWatchdogStatus {
  enabled: boolean;
  channel: 'up' | 'down';
  channelDownSince: number | null;
  /** When the last heartbeat that reached every root began. */
  lastHeartbeatAt: number | null;
  counter: number;
  isolated: boolean;
  released: string[];
  fencedAt: number | null;
}

export const defaultHeartbeatMs = 1000;
const defaultShutdownSeconds = 30;
/** The channel is down once the control plane has not been heard for this many heartbeats. */
export const channelSilenceBeats = 3;
/**
 * How long before the control plane's self-fencing wait ends (selfFenceSeconds + one heartbeat
 * after the later of the agent's last word and its last heartbeat) the sentinel kills: more than
 * twice its poll (100 ms: reading the feed, checking the deadline) and the kill itself.
 */
export const sentinelGuardMs = 400;

/**
 * The guard for a heartbeat: sentinelGuardMs, or half a beat when beats are short, so the sentinel
 * acts midway between this watchdog's self-fencing and the control plane's restart rather than
 * a few milliseconds after the former (a busy host delays a timer by more than that).
 */
export function sentinelGuardFor(heartbeatMs: number): number {
  return Math.min(sentinelGuardMs, heartbeatMs / 2);
}

export class HaWatchdog {
  readonly bootId = randomUUID();
  readonly #options: HaWatchdogOptions;
  readonly #roots: string[];
  #settings: HaAgentSettings | null = null;
  readonly #released = new Set<string>();
  #fencedAt: number | null = null;
  // The channel: open or not, and when the control plane was last heard (any message or pong).
  #channelOpen = false;
  #lastHeard: number | null = null;
  #downSince: number | null = null;
  #isolated = false;
  #responding = false;
  // The isolation address: when the control plane's host last answered while the channel was down.
  #networkAnsweredAt: number | null = null;
  #probing = false;
  #networkToldOnce = false;
  // The storage heartbeat.
  #counter = 0;
  #lastWritten: number | null = null;
  #writing = false;
  #storageFailing = false;
  readonly #killed = new Set<number>();
  #loop: { controller: AbortController; done: Promise<void> } | undefined;

  constructor(options: HaWatchdogOptions) {
    this.#options = options;
    this.#roots = options.storageRoots.map((root) => resolve(root));
  }

  get hostName(): string {
    return this.#options.hostName;
  }

  /** How often the heartbeat is written, and the channel pinged. */
  get heartbeatMs(): number {
    return this.#settings?.heartbeatMs ?? defaultHeartbeatMs;
  }

  /** Takes up the settings kept in the state directory: a restarted agent watches at once. */
  start(): void {
    const kept = this.#options.state.load();
    if (kept) {
      this.#settings = kept.settings;
      for (const uuid of kept.released) this.#released.add(uuid);
      this.#fencedAt = kept.fencedAt;
    }
    // What a sentinel killed while the agent was away: released, whatever the settings are now.
    this.#takeSentinelFencing();
    if (kept?.settings.enabled) {
      this.#options.logger.info({ settings: kept.settings }, 'ha: watching (kept settings)');
      this.#startLoop(true);
    } else this.#standDownSentinel();
  }

  /**
   * Stops watching. With HA off, or no VM left to guard, the sentinel stands down. With HA on and
   * VMs running it stays armed: the control plane cannot tell a deliberate stop from a death, and
   * restarts the VMs elsewhere once the lease deadline passes — so they must be gone by then, unless
   * an agent (this one, restarted) feeds the sentinel again in time.
   */
  async stop(): Promise<void> {
    const loop = this.#loop;
    this.#loop = undefined;
    loop?.controller.abort();
    await loop?.done;
    if (this.#settings?.enabled && this.#guarded > 0)
      this.#options.logger.warn(
        { vms: this.#guarded },
        'ha: stopping with HA on: the fencing sentinel stays armed; start the agent again within selfFenceSeconds, or its VMs are killed and restarted elsewhere',
      );
    else this.#standDownSentinel();
  }

  configure(settings: HaAgentSettings): {
    hostName: string;
    bootId: string;
    heartbeatRoots: string[];
  } {
    const wasEnabled = this.#settings?.enabled === true;
    this.#settings = settings;
    this.#persist();
    this.#options.logger.info({ settings }, 'ha: configured');
    if (settings.enabled && !wasEnabled) this.#startLoop(false);
    if (!settings.enabled && wasEnabled)
      this.stop().catch((error: unknown) =>
        this.#options.logger.error({ err: error }, 'ha: the watchdog did not stop'),
      );
    return {
      hostName: this.hostName,
      bootId: this.bootId,
      heartbeatRoots: this.heartbeatRoots(this.#options.vms.vms()),
    };
  }

  /** Forgets released VMs the control plane has dealt with; answers those still listed. */
  clearReleased(uuids: string[]): string[] {
    for (const uuid of uuids) this.#released.delete(uuid);
    if (this.#released.size === 0) this.#fencedAt = null;
    if (this.#settings) this.#persist();
    return [...this.#released];
  }

  // --- the channel, as host-agent.ts reports it ---

  channelOpened(): void {
    this.#channelOpen = true;
    this.#lastHeard = this.#options.clock.now();
  }

  /** Anything from the control plane (a message, a pong). */
  channelHeard(): void {
    if (this.#channelOpen) this.#lastHeard = this.#options.clock.now();
  }

  channelClosed(): void {
    this.#channelOpen = false;
  }

  status(): HaWatchdogStatus {
    const up = this.#channelUp(this.#options.clock.now());
    return {
      enabled: this.#settings?.enabled === true,
      channel: up ? 'up' : 'down',
      channelDownSince: up ? null : this.#downSince,
      lastHeartbeatAt: this.#lastWritten,
      counter: this.#counter,
      isolated: this.#isolated,
      released: [...this.#released],
      fencedAt: this.#fencedAt,
    };
  }

  /** The storage roots holding a disk of one of its VMs: where the heartbeat goes. */
  heartbeatRoots(vms: HaLocalVm[]): string[] {
    const found = new Set<string>();
    for (const vm of vms)
      for (const file of vm.diskFiles) {
        const path = resolve(file);
        // The deepest root that holds the file (roots may nest).
        const root = this.#roots
          .filter((r) => path.startsWith(r.endsWith(sep) ? r : r + sep))
          .sort((a, b) => b.length - a.length)[0];
        if (root !== undefined) found.add(root);
      }
    return [...found].sort();
  }

  #startLoop(restarted: boolean): void {
    const controller = new AbortController();
    const done = this.#run(controller.signal, restarted).catch((error: unknown) =>
      this.#options.logger.error({ err: error }, 'ha: the watchdog failed'),
    );
    this.#loop = { controller, done };
  }

  async #run(signal: AbortSignal, restarted: boolean): Promise<void> {
    if (restarted) await this.#recall(signal);
    while (!signal.aborted) {
      this.#tick();
      await this.#options.clock.sleep(this.#untilNextBeat(), signal).catch(() => undefined);
    }
  }

  /**
   * A heartbeat, or less when self-fencing falls due before the next beat: the watchdog fences
   * when it is due, not up to a beat later (the fencing sentinel acts shortly after).
   */
  #untilNextBeat(): number {
    const settings = this.#settings;
    const beat = this.heartbeatMs;
    if (!settings?.enabled || this.#lastHeard === null) return beat;
    const fenceMs = settings.selfFenceSeconds * 1000;
    const dueAt = Math.max(
      this.#lastHeard + Math.max(fenceMs, channelSilenceBeats * beat),
      this.#lastWritten === null ? -Infinity : this.#lastWritten + fenceMs,
    );
    const wait = dueAt - this.#options.clock.now();
    return wait > 0 && wait < beat ? wait : beat;
  }

  /**
   * An agent that starts again takes up where its last heartbeat left off: the counter goes on,
   * and the channel and the storage count as lost since then (the control plane may have lost
   * them then), so an agent that was away longer than selfFenceSeconds kills its VMs at once.
   * A storage that does not answer within two heartbeats is not waited for.
   */
  async #recall(signal: AbortSignal): Promise<void> {
    const started = this.#options.clock.now();
    const roots = this.heartbeatRoots(this.#options.vms.vms());
    const reads = roots.map((root) =>
      this.#options.storage.read(root, this.hostName).catch(() => null),
    );
    const timeout = this.#options.clock
      .sleep(2 * this.heartbeatMs, signal)
      .then(() => [] as Array<HaHeartbeat | null>)
      .catch(() => [] as Array<HaHeartbeat | null>);
    const found = (await Promise.race([Promise.all(reads), timeout])).filter(
      (heartbeat): heartbeat is HaHeartbeat => heartbeat !== null,
    );
    const last = found.sort((a, b) => b.writtenAt - a.writtenAt)[0];
    this.#counter = Math.max(this.#counter, ...found.map((heartbeat) => heartbeat.counter));
    const lastKnownUp =
      last === undefined
        ? started
        : last.channel === 'down'
          ? (last.channelDownSince ?? last.writtenAt)
          : last.writtenAt;
    // Unless the channel opened meanwhile, it was last known up then.
    if (this.#lastHeard === null || !this.#channelOpen) this.#lastHeard = lastKnownUp;
    if (this.#lastWritten === null && last !== undefined) this.#lastWritten = last.writtenAt;
    this.#options.logger.info(
      { lastHeartbeat: last?.writtenAt ?? null, counter: this.#counter },
      'ha: taking up the previous heartbeat',
    );
  }

  /** Asks the isolation address once at a time, in the background; a recent answer counts. */
  #probeNetwork(): void {
    const network = this.#options.network;
    if (!network || this.#probing) return;
    this.#probing = true;
    network
      .answers()
      .then((answered) => {
        if (answered) this.#networkAnsweredAt = this.#options.clock.now();
      })
      .catch(() => undefined)
      .finally(() => (this.#probing = false));
  }

  #channelUp(now: number): boolean {
    return (
      this.#channelOpen &&
      this.#lastHeard !== null &&
      now - this.#lastHeard < channelSilenceBeats * this.heartbeatMs
    );
  }

  /** One beat: judge the channel, fence or isolate if due, write the heartbeat. */
  #tick(): void {
    const settings = this.#settings;
    if (!settings?.enabled) return;
    const now = this.#options.clock.now();
    const log = this.#options.logger;
    const up = this.#channelUp(now);
    if (up) {
      if (this.#downSince !== null)
        log.info({ downMs: now - this.#downSince }, 'ha: the control plane is heard again');
      if (this.#isolated) log.info('ha: isolation ends (VMs it turned off stay off)');
      this.#downSince = null;
      this.#isolated = false;
      this.#networkAnsweredAt = null;
      this.#networkToldOnce = false;
    } else if (this.#downSince === null) {
      this.#downSince = this.#lastHeard ?? now;
      log.warn({ lastHeard: this.#downSince }, 'ha: the control plane is not heard');
    }
    const vms = this.#options.vms.vms();
    this.#takeSentinelFencing();
    this.#feedSentinel(vms, settings, now);
    if (!up) {
      this.#probeNetwork();
      const downMs = now - this.#downSince!;
      const fenceMs = settings.selfFenceSeconds * 1000;
      const storageLostMs = this.#lastWritten === null ? Infinity : now - this.#lastWritten;
      const networkAnswers =
        this.#networkAnsweredAt !== null &&
        now - this.#networkAnsweredAt <= channelSilenceBeats * this.heartbeatMs;
      const cutOff =
        !this.#isolated &&
        downMs >= settings.isolationSeconds * 1000 &&
        storageLostMs <= channelSilenceBeats * this.heartbeatMs;
      if (downMs >= fenceMs && storageLostMs >= fenceMs) this.#fence(vms, now, storageLostMs);
      else if (cutOff && networkAnswers) {
        if (!this.#networkToldOnce)
          log.warn(
            { downMs },
            'ha: the control plane is not heard, but its host answers on the network: it is down, this host is not isolated (no isolation response)',
          );
        this.#networkToldOnce = true;
      } else if (cutOff) {
        this.#isolated = true;
        log.warn(
          { downMs, response: settings.isolationResponse },
          'ha: isolated (the control plane is lost, the storage is not): applying the isolation response',
        );
      }
      if (this.#isolated && !this.#responding) this.#respond(vms, settings);
    }
    if (!this.#writing) this.#beat(vms, settings, now, up);
  }

  /** Kills every QEMU of the host at once. */
  #fence(vms: HaLocalVm[], now: number, storageLostMs: number): void {
    const victims = vms.filter((vm) => vm.pid !== null && !this.#killed.has(vm.pid));
    if (victims.length === 0) return;
    const log = this.#options.logger;
    log.error(
      {
        downMs: now - this.#downSince!,
        storageLostMs: Number.isFinite(storageLostMs) ? storageLostMs : null,
        vms: victims.map((vm) => vm.name),
      },
      'ha: self-fencing: the control plane and the storage heartbeat are both lost; killing every VM',
    );
    for (const vm of victims) {
      try {
        this.#options.vms.kill(vm.pid!);
      } catch (error) {
        // Already gone (ESRCH) is what was wanted.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
          log.error({ vm: vm.name, pid: vm.pid, err: error }, 'ha: self-fencing could not kill');
          continue;
        }
      }
      this.#killed.add(vm.pid!);
      if (vm.uuid !== null && !vm.transient) this.#released.add(vm.uuid);
      log.error({ vm: vm.name, uuid: vm.uuid, pid: vm.pid }, 'ha: self-fencing killed a VM');
    }
    this.#fencedAt = now;
    this.#persist();
  }

  /** The isolation response for every running VM, in parallel; each is released once its QEMU is gone. */
  #respond(vms: HaLocalVm[], settings: HaAgentSettings): void {
    const responseOf = (vm: HaLocalVm) =>
      (vm.uuid !== null ? settings.vmIsolationResponses?.[vm.uuid] : undefined) ??
      settings.isolationResponse;
    const running = vms.filter(
      (vm) => vm.pid !== null && !vm.transient && responseOf(vm) !== 'leave-running',
    );
    if (running.length === 0) return;
    this.#responding = true;
    const log = this.#options.logger;
    const shutdownMs = (settings.shutdownSeconds ?? defaultShutdownSeconds) * 1000;
    const one = async (vm: HaLocalVm) => {
      const response = responseOf(vm);
      log.warn({ vm: vm.name, response }, 'ha: isolation response');
      // A VM that went away by itself meanwhile refuses the stop: what counts is that it is gone.
      await (
        response === 'shutdown'
          ? this.#options.vms.shutdown(vm.id, shutdownMs)
          : this.#options.vms.powerOff(vm.id)
      ).catch((error: unknown) =>
        log.warn({ vm: vm.name, err: (error as Error).message }, 'ha: the stop was refused'),
      );
      const now = this.#options.vms.vms().find((v) => v.id === vm.id);
      if (now?.pid !== null && now?.pid !== undefined) {
        log.error({ vm: vm.name }, 'ha: the isolation response left the VM running');
        return;
      }
      if (vm.uuid === null) {
        log.warn({ vm: vm.name }, 'ha: turned off, but without a UUID it cannot be released');
        return;
      }
      this.#released.add(vm.uuid);
      this.#persist();
      log.warn(
        { vm: vm.name, uuid: vm.uuid },
        'ha: turned off by the isolation response: released',
      );
    };
    Promise.all(
      running.map((vm) =>
        one(vm).catch((error: unknown) =>
          log.error({ vm: vm.name, err: error }, 'ha: the isolation response failed'),
        ),
      ),
    )
      .finally(() => {
        this.#responding = false;
      })
      .catch(() => undefined);
  }

  /** Writes the heartbeat into every root; it counts as written only once every root has it. */
  #beat(vms: HaLocalVm[], settings: HaAgentSettings, now: number, up: boolean): void {
    const roots = this.heartbeatRoots(vms);
    if (roots.length === 0) return;
    this.#counter += 1;
    const heartbeat: HaHeartbeat = {
      format: 1,
      host: this.hostName,
      bootId: this.bootId,
      counter: this.#counter,
      writtenAt: now,
      heartbeatMs: settings.heartbeatMs ?? defaultHeartbeatMs,
      channel: up ? 'up' : 'down',
      channelDownSince: up ? null : this.#downSince,
      vms: vms
        .filter((vm) => vm.uuid !== null && !vm.transient)
        .map((vm) => ({ uuid: vm.uuid!, running: vm.pid !== null })),
      released: [...this.#released].sort(),
      fencedAt: this.#fencedAt,
    };
    this.#writing = true;
    Promise.allSettled(roots.map((root) => this.#options.storage.write(root, heartbeat)))
      .then((results) => {
        const failed = results.flatMap((result, index) =>
          result.status === 'rejected'
            ? [{ root: roots[index], err: (result.reason as Error).message }]
            : [],
        );
        if (failed.length === 0) {
          if (this.#storageFailing)
            this.#options.logger.info('ha: the storage heartbeat is written again');
          this.#storageFailing = false;
          this.#lastWritten = Math.max(this.#lastWritten ?? 0, now);
          // At once, not a beat later: a restarted agent's first heartbeat moves the deadline.
          if (this.#loop && this.#settings?.enabled)
            this.#feedSentinel(vms, this.#settings, this.#options.clock.now());
        } else if (!this.#storageFailing) {
          this.#storageFailing = true;
          this.#options.logger.warn({ failed }, 'ha: the storage heartbeat cannot be written');
        }
      })
      .finally(() => {
        this.#writing = false;
      })
      .catch((error: unknown) =>
        this.#options.logger.error({ err: error }, 'ha: the heartbeat went wrong'),
      );
  }

  /**
   * Arms the sentinel until just before the control plane may restart the VMs: it waits
   * selfFenceSeconds + one heartbeat after the later of the agent's last word and its last
   * heartbeat, so the sentinel kills sentinelGuardFor(heartbeat) before that, counted from the later of the
   * channel last heard and the last heartbeat written. That is after this watchdog's own
   * self-fencing (selfFenceSeconds after the same moment): while the agent lives it fences
   * itself; the sentinel acts when it is gone. A restarted agent that has not heard the control
   * plane nor written a heartbeat yet does not push the deadline back.
   */
  #feedSentinel(vms: HaLocalVm[], settings: HaAgentSettings, now: number): void {
    const sentinel = this.#options.sentinel;
    if (!sentinel) return;
    const contact = Math.max(this.#lastHeard ?? now, this.#lastWritten ?? -Infinity);
    const killAfterMs =
      contact +
      settings.selfFenceSeconds * 1000 +
      this.heartbeatMs -
      sentinelGuardFor(this.heartbeatMs) -
      now;
    this.#guarded = vms.filter((vm) => vm.pid !== null).length;
    try {
      sentinel.feed(
        killAfterMs,
        vms.flatMap((vm) =>
          vm.pid === null
            ? []
            : [
                {
                  name: vm.name,
                  uuid: vm.uuid,
                  pid: vm.pid,
                  release: vm.uuid !== null && !vm.transient,
                },
              ],
        ),
      );
    } catch (error) {
      this.#options.logger.error({ err: error }, 'ha: the fencing sentinel could not be fed');
    }
  }

  /** How many running VMs the sentinel was last fed. */
  #guarded = 0;

  #standDownSentinel(): void {
    try {
      this.#options.sentinel?.standDown();
    } catch (error) {
      this.#options.logger.error({ err: error }, 'ha: the fencing sentinel could not stand down');
    }
  }

  /** VMs the sentinel killed (the agent was gone): released, as self-fencing would have. */
  #takeSentinelFencing(): void {
    let fencing;
    try {
      fencing = this.#options.sentinel?.takeFenced();
    } catch (error) {
      this.#options.logger.error({ err: error }, 'ha: what the fencing sentinel did is unreadable');
      return;
    }
    if (!fencing) return;
    for (const vm of fencing.vms) {
      if (vm.release && vm.uuid !== null) this.#released.add(vm.uuid);
      this.#options.logger.error(
        { vm: vm.name, uuid: vm.uuid, pid: vm.pid, fencedAt: fencing.fencedAt },
        'ha: the fencing sentinel killed a VM while the agent was away',
      );
    }
    this.#fencedAt = Math.max(this.#fencedAt ?? 0, fencing.fencedAt);
    this.#persist();
  }

  #persist(): void {
    if (!this.#settings) return;
    try {
      this.#options.state.save({
        settings: this.#settings,
        released: [...this.#released].sort(),
        fencedAt: this.#fencedAt,
      });
    } catch (error) {
      this.#options.logger.error({ err: error }, 'ha: the state could not be kept');
    }
  }
}
