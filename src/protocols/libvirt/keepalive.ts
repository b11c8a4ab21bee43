/**
 * Our side of libvirt's keepalive: after `intervalMs` without any packet from
 * the peer we send a PING; after `maxMissed` such intervals in a row the peer
 * is declared dead. Time comes from the injected Clock, so tests do not sleep.
 */
import type { Clock } from '../../core/clock.js';

export interface KeepaliveOptions {
  /** Silence after which we ping; libvirt's default keepalive_interval is 5 s. */
  intervalMs: number;
  /** Pings in a row without any answer before the peer is dead; libvirt's default keepalive_count is 5. */
  maxMissed: number;
}

export const DEFAULT_KEEPALIVE: KeepaliveOptions = { intervalMs: 5000, maxMissed: 5 };

export interface KeepaliveHooks {
  sendPing(): void;
  onPeerDead(silentForMs: number): void;
  /** While we deliberately stop reading (stream back-pressure), silence is ours, not the peer's. */
  isReadingPaused(): boolean;
}

export class KeepaliveMonitor {
  readonly #clock: Clock;
  readonly #options: KeepaliveOptions;
  readonly #hooks: KeepaliveHooks;
  readonly #stop = new AbortController();
  #lastReceived: number;
  #missed = 0;

  constructor(clock: Clock, options: KeepaliveOptions, hooks: KeepaliveHooks) {
    this.#clock = clock;
    this.#options = options;
    this.#hooks = hooks;
    this.#lastReceived = clock.now();
  }

  get missed(): number {
    return this.#missed;
  }

  start(): void {
    this.#run().catch(() => undefined);
  }

  stop(): void {
    this.#stop.abort();
  }

  /** Any packet from the peer proves it alive. */
  noteReceived(): void {
    this.#lastReceived = this.#clock.now();
    this.#missed = 0;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await this.#clock.sleep(this.#options.intervalMs, signal);
      if (signal.aborted) return;
      const now = this.#clock.now();
      if (this.#hooks.isReadingPaused()) {
        this.noteReceived();
        continue;
      }
      if (now - this.#lastReceived < this.#options.intervalMs) continue;
      if (this.#missed >= this.#options.maxMissed) {
        this.#hooks.onPeerDead(now - this.#lastReceived);
        return;
      }
      this.#missed += 1;
      this.#hooks.sendPing();
    }
  }
}
