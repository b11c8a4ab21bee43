/**
 * The failure detector for one host, from two independent signals: its control channel (any
 * message or a pong to the control plane's ping each second) and its storage heartbeat (a counter
 * it writes on the datastores its VMs use). Pure: fed the signals and the time, it says what the
 * host is.
 *
 * - healthy: the channel answers.
 * - suspect: the channel has been silent less than the detection time.
 * - isolated: the channel has been silent longer, but the storage heartbeat still advances: the
 *   host is cut off from the control plane, not dead. Its VMs may be running: nothing restarts
 *   (the agent's isolation response decides what it does with them).
 * - failed: both have been silent longer than the detection time, or the channel has and the host
 *   writes no storage heartbeat (dead or isolated cannot be told apart: fencing decides).
 *
 * After the control plane starts, every host counts as heard at the start: none is declared
 * failed before it had the grace period to report (the control plane was the one away).
 */

export type HostVerdict =
  | { state: 'healthy' }
  | { state: 'suspect'; since: number }
  | { state: 'isolated'; since: number }
  | { state: 'failed'; since: number };

export interface HostSignals {
  /** ms since the agent last said anything on its channel; null: no channel now. */
  channelSilentMs: number | null;
  /** The storage heartbeat's counter as read now; null: none (not written, not readable). */
  storageCounter: number | null;
  /** When the heartbeats were last read through (null: never). */
  storageReadAt?: number | null;
}

/** A storage reading older than this tells nothing about now: the verdict waits for a fresh one. */
export const staleReadingMs = 1_500;

/** The channel is healthy while it was heard this recently (pings go each second). */
export const healthySilenceMs = 2_500;

export class HostWatch {
  /** When the host last gave a sign of life on its channel. */
  #lastHeard: number;
  #lastCounter: number | null = null;
  /** When the storage counter was last seen to change (read time). */
  #lastAdvance: number | null = null;
  /** When the counter's current value was first read (the lease as last seen). */
  #counterSeenAt: number | null = null;

  /** `startedAt`: when watching began (the control plane's start): the grace period's origin. */
  constructor(startedAt: number) {
    this.#lastHeard = startedAt;
  }

  get lastHeard(): number {
    return this.#lastHeard;
  }

  observe(now: number, signals: HostSignals, detectionMs: number): HostVerdict {
    if (signals.channelSilentMs !== null)
      this.#lastHeard = Math.max(this.#lastHeard, now - signals.channelSilentMs);
    if (signals.storageCounter !== null && signals.storageCounter !== this.#lastCounter) {
      // The first reading proves nothing about now (it may be an old file): only a change does.
      if (this.#lastCounter !== null) this.#lastAdvance = now;
      this.#lastCounter = signals.storageCounter;
      this.#counterSeenAt = now;
    }
    const silent = now - this.#lastHeard;
    if (signals.channelSilentMs !== null && silent < healthySilenceMs) return { state: 'healthy' };
    if (silent < detectionMs) return { state: 'suspect', since: this.#lastHeard };
    // A host that writes a heartbeat is judged on a fresh reading of it, never on a late one.
    const readAt = signals.storageReadAt ?? null;
    if (this.#counterSeenAt !== null && (readAt === null || now - readAt > staleReadingMs))
      return { state: 'suspect', since: this.#lastHeard };
    if (this.#lastAdvance !== null && now - this.#lastAdvance < detectionMs)
      return { state: 'isolated', since: this.#lastHeard };
    return { state: 'failed', since: Math.max(this.#lastHeard, this.#lastAdvance ?? 0) };
  }

  /**
   * When the storage counter's current value was first read (null: no heartbeat ever read): the
   * host wrote it no later than that, and has written nothing since.
   */
  get counterSeenAt(): number | null {
    return this.#counterSeenAt;
  }

  /** When its storage heartbeat last advanced (null: never seen to). */
  get lastStorageAdvance(): number | null {
    return this.#lastAdvance;
  }
}
