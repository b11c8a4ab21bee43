/**
 * Following the events: what was missed (from the store, a page at a time), then what happens (as
 * it is delivered), in sequence order, at the pace of the one following. The SSE route, and any
 * later stream, share it (EventBus.follow).
 */
import type { ZenithEvent } from '../../api/events.js';
import type { Clock } from '../../core/clock.js';

export interface EventFilter {
  /** Only types starting with this (task., inventory.). */
  type?: string | undefined;
  /** Only events about this object. */
  objectId?: string | undefined;
  /** Asked for each event as it is delivered, so it may change while following (access changes). */
  visible?: (event: ZenithEvent) => boolean;
}

/** An event, or a mark that nothing happened for a while (a stream sends a keep-alive then). */
export type Followed = { kind: 'event'; event: ZenithEvent } | { kind: 'idle' };

export interface FollowOptions {
  /** Time without an event before an idle mark (default 15 s). */
  idleMs?: number;
  /** Events read from the store at once (default 1,000). */
  pageSize?: number;
  /** Live events kept for a slow follower before it reads them from the store instead (default 10,000). */
  maxQueued?: number;
}

/** What following needs of the event bus. */
export interface EventSource {
  list(options: { afterSeq?: number | undefined; limit: number }): Promise<ZenithEvent[]>;
  lastSeq(): Promise<number>;
  subscribe(listener: (event: ZenithEvent) => void): () => void;
}

export async function* followEvents(
  source: EventSource,
  clock: Clock,
  afterSeq: number | undefined,
  filter: EventFilter,
  signal: AbortSignal,
  options: FollowOptions = {},
): AsyncGenerator<Followed> {
  const idleMs = options.idleMs ?? 15_000;
  const pageSize = options.pageSize ?? 1000;
  const maxQueued = options.maxQueued ?? 10_000;
  const accepts = (event: ZenithEvent) =>
    (!filter.type || event.type.startsWith(filter.type)) &&
    (!filter.objectId || event.objectId === filter.objectId) &&
    (filter.visible?.(event) ?? true);

  // Subscribed first: nothing delivered while the store is read is missed.
  let queue: ZenithEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const unsubscribe = source.subscribe((event) => {
    // A follower this far behind reads the store again: it holds every event, in order.
    if (queue.length >= maxQueued) {
      overflowed = true;
      queue = [];
    } else queue.push(event);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);

  /** Waits for an event or the end; true when idleMs passed first. */
  const idle = async (): Promise<boolean> => {
    const timer = new AbortController();
    const woken = new Promise<false>((resolve) => {
      wake = () => resolve(false);
    });
    try {
      return await Promise.race([
        woken,
        clock.sleep(idleMs, timer.signal).then(
          () => true,
          () => false,
        ),
      ]);
    } finally {
      wake = undefined;
      timer.abort();
    }
  };

  try {
    let last = afterSeq ?? (await source.lastSeq());
    let replaying = afterSeq !== undefined;
    while (!signal.aborted) {
      if (replaying || overflowed) {
        replaying = true;
        overflowed = false;
        const page = await source.list({ afterSeq: last, limit: pageSize });
        for (const event of page) {
          if (signal.aborted) return;
          last = event.seq;
          if (accepts(event)) yield { kind: 'event', event };
        }
        if (page.length < pageSize) replaying = false;
        continue;
      }
      const next = queue.shift();
      if (next !== undefined) {
        // Already read from the store, or not wanted: skipped (a later one may still come).
        if (next.seq > last && accepts(next)) {
          last = next.seq;
          yield { kind: 'event', event: next };
        }
        continue;
      }
      if (await idle()) yield { kind: 'idle' };
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
