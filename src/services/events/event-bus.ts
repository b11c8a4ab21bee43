/**
 * One stream of events (inventory changes, task progress, connection state), typed by the
 * contract (src/api/events.ts). Events are persisted with a sequence number so that a client can
 * resume from the last one it saw, then delivered to live subscribers; follow() is both at once.
 */
import type { NewEvent, ZenithEvent } from '../../api/events.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { Db, Tx } from '../../store/store.js';
import {
  followEvents,
  type EventFilter,
  type FollowOptions,
  type Followed,
} from './event-follower.js';

export type { NewEvent, ZenithEvent } from '../../api/events.js';
export type { EventFilter, Followed } from './event-follower.js';

export type EventListener = (event: ZenithEvent) => void;

const insertChunk = 500;

export class EventBus {
  readonly #listeners = new Set<EventListener>();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Writes events inside the caller's transaction; deliver() them once it has committed. */
  async persist(tx: Tx | Db, events: NewEvent[]): Promise<ZenithEvent[]> {
    const ts = this.clock.now();
    const out: ZenithEvent[] = [];
    for (let i = 0; i < events.length; i += insertChunk) {
      const chunk = events.slice(i, i + insertChunk);
      const rows = await tx
        .insertInto('events')
        .values(
          chunk.map((e) => ({
            type: e.type,
            object_id: e.objectId ?? null,
            data: JSON.stringify(e.data),
            ts,
          })),
        )
        .returning('seq')
        .execute();
      rows.forEach((row, index) => {
        const event = chunk[index]!;
        out.push({
          seq: Number(row.seq),
          type: event.type,
          objectId: event.objectId ?? null,
          data: event.data,
          ts,
        } as ZenithEvent);
      });
    }
    return out;
  }

  deliver(events: ZenithEvent[]): void {
    for (const event of events) {
      for (const listener of this.#listeners) {
        try {
          listener(event);
        } catch (error) {
          this.logger.error({ err: error, type: event.type }, 'event listener failed');
        }
      }
    }
  }

  async publish(events: NewEvent[]): Promise<ZenithEvent[]> {
    const persisted = await this.persist(this.db, events);
    this.deliver(persisted);
    return persisted;
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events after `afterSeq` in order; without it, the latest `limit` events (still in order). */
  async list(options: {
    afterSeq?: number | undefined;
    limit: number;
    typePrefix?: string;
    objectId?: string;
  }): Promise<ZenithEvent[]> {
    const newestFirst = options.afterSeq === undefined;
    let query = this.db
      .selectFrom('events')
      .selectAll()
      .where('seq', '>', options.afterSeq ?? 0);
    if (options.typePrefix) query = query.where('type', 'like', `${options.typePrefix}%`);
    if (options.objectId) query = query.where('object_id', '=', options.objectId);
    const rows = await query
      .orderBy('seq', newestFirst ? 'desc' : 'asc')
      .limit(options.limit)
      .execute();
    if (newestFirst) rows.reverse();
    // Stored by persist() from typed events: read back as the contract says they are.
    return rows.map(
      (row) =>
        ({
          seq: Number(row.seq),
          type: row.type,
          objectId: row.object_id,
          data: JSON.parse(row.data) as unknown,
          ts: row.ts,
        }) as ZenithEvent,
    );
  }

  /**
   * The events after `afterSeq` (from now on without it) that pass `filter`, in order, as long as
   * `signal` is not aborted: first those stored (a page at a time), then live ones as they come.
   * The consumer sets the pace: nothing is read ahead of what it asks for, and live events that
   * pile up meanwhile are read from the store again rather than held without bound. After
   * `idleMs` (the clock's time) without an event it yields an `idle` mark (for keep-alives).
   */
  follow(
    afterSeq: number | undefined,
    filter: EventFilter,
    signal: AbortSignal,
    options: FollowOptions = {},
  ): AsyncGenerator<Followed> {
    return followEvents(this, this.clock, afterSeq, filter, signal, options);
  }

  /** Forgets events older than the retention period (the stream is for following, not for history: that is the audit trail). */
  async prune(retentionMs: number): Promise<number> {
    const result = await this.db
      .deleteFrom('events')
      .where('ts', '<', this.clock.now() - retentionMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async lastSeq(): Promise<number> {
    const row = await this.db
      .selectFrom('events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    return Number(row?.seq ?? 0);
  }
}
