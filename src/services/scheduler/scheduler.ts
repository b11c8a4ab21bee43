/**
 * The scheduler: cron patterns with a time zone, kept in the store, each owned by a handler that
 * fires it (backup jobs today; the automation issue's jobs will register theirs the same way).
 *
 * A slot fires once. A handler fires a slot by writing what it starts (a task) in the same
 * transaction as `take(tx)`, a compare-and-set of the schedule's next slot: a second process or a
 * second loop that saw the same slot finds it taken and writes nothing. A crash before that
 * transaction commits leaves the slot due, and the next process fires it; after, the task is
 * recorded and the task service resumes it. Slots missed while no process ran are fired once, when
 * one runs again (a backup late rather than none), then the schedule goes on from the present.
 */
import { Cron } from 'croner';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { SchedulesTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';

/** A schedule as its owner gives it. */
export interface ScheduleSpec {
  /** Five fields (minute hour day month weekday), or six with seconds first; @daily and the like. */
  cron: string;
  /** An IANA time zone the pattern is read in. */
  timeZone: string;
  enabled: boolean;
}

export interface ScheduleState extends ScheduleSpec {
  id: string;
  ownerKind: string;
  nextRunAt: number | null;
  lastRunAt: number | null;
  lastTaskId: string | null;
}

/** What a handler is given to fire one slot. */
export interface Firing {
  id: string;
  /** The slot being fired. */
  slot: number;
  /**
   * Takes the slot inside the handler's transaction: throws ZEN_CONFLICT when another process took
   * it first (the handler's transaction then writes nothing). `taskId` is kept as the last run.
   */
  take(tx: Tx, taskId: string | null): Promise<void>;
}

export interface ScheduleHandler {
  /** Fires a slot: starts what the owner runs, calling `take` in the transaction that records it. */
  fire(firing: Firing): Promise<void>;
}

/** Checks a pattern and a time zone; answers the next slot after `after` (null: none left). */
export function nextSlot(
  spec: Pick<ScheduleSpec, 'cron' | 'timeZone'>,
  after: number,
): number | null {
  let cron: Cron;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: spec.timeZone });
  } catch {
    throw new ZenithError('ZEN_BAD_REQUEST', `'${spec.timeZone}' is not an IANA time zone`, {
      field: 'timeZone',
      timeZone: spec.timeZone,
    });
  }
  try {
    cron = new Cron(spec.cron, { timezone: spec.timeZone, paused: true });
  } catch (error) {
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `'${spec.cron}' is not a cron pattern: ${(error as Error).message.replace(/^CronPattern: /, '')}`,
      { field: 'schedule', schedule: spec.cron },
    );
  }
  return cron.nextRun(new Date(after))?.getTime() ?? null;
}

/** The next `count` slots after `after`, for showing a schedule to a user. */
export function nextSlots(
  spec: Pick<ScheduleSpec, 'cron' | 'timeZone'>,
  after: number,
  count: number,
): number[] {
  const slots: number[] = [];
  let from = after;
  for (let i = 0; i < count; i++) {
    const next = nextSlot(spec, from);
    if (next === null) break;
    slots.push(next);
    from = next;
  }
  return slots;
}

const stateOf = (row: SchedulesTable): ScheduleState => ({
  id: row.id,
  ownerKind: row.owner_kind,
  cron: row.cron,
  timeZone: row.time_zone,
  enabled: row.enabled === 1,
  nextRunAt: row.next_run_at === null ? null : Number(row.next_run_at),
  lastRunAt: row.last_run_at === null ? null : Number(row.last_run_at),
  lastTaskId: row.last_task_id,
});

export class Scheduler {
  readonly #handlers = new Map<string, ScheduleHandler>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      logger: Logger;
      /**
       * The longest the loop sleeps before it looks again (ms; a minute by default): it sleeps until
       * the next slot any schedule has, or this long when another process may have set one.
       */
      maxIdleMs?: number;
    },
  ) {}

  /** Wakes the loop from its sleep (a schedule was set or removed here). */
  #wake: AbortController | undefined;
  /** A schedule changed here since the loop last looked: it looks again shortly (after the commit). */
  #changed = false;

  #nudge(): void {
    this.#changed = true;
    this.#wake?.abort();
  }

  /** How long the loop may sleep: until the earliest slot of an enabled schedule, within bounds. */
  async #idleMs(): Promise<number> {
    const maxIdle = this.deps.maxIdleMs ?? 60_000;
    // Set in a transaction that may not have committed when it woke the loop: look again in a second.
    if (this.#changed) {
      this.#changed = false;
      return Math.min(1000, maxIdle);
    }
    const row = await this.deps.store.db
      .selectFrom('schedules')
      .select((eb) => eb.fn.min('next_run_at').as('next'))
      .where('enabled', '=', 1)
      .executeTakeFirst();
    const next = row?.next === null || row?.next === undefined ? null : Number(row.next);
    if (next === null) return maxIdle;
    const wait = next - this.deps.clock.now();
    // A slot still due after a round (its owner has no handler in this process): not in a spin.
    return wait <= 0 ? Math.min(1000, maxIdle) : Math.min(wait, maxIdle);
  }

  /** The handler that fires the schedules of an owner kind. */
  register(ownerKind: string, handler: ScheduleHandler): void {
    this.#handlers.set(ownerKind, handler);
  }

  /**
   * Sets (or replaces) a schedule, in the caller's transaction: its next slot is counted from now,
   * so a changed pattern never fires for a slot of the old one.
   */
  async set(tx: Tx, id: string, ownerKind: string, spec: ScheduleSpec): Promise<ScheduleState> {
    const next = spec.enabled ? nextSlot(spec, this.deps.clock.now()) : null;
    // Checked even when disabled: a pattern that cannot run is refused when it is given.
    if (!spec.enabled) nextSlot(spec, this.deps.clock.now());
    const row = {
      id,
      owner_kind: ownerKind,
      cron: spec.cron,
      time_zone: spec.timeZone,
      enabled: spec.enabled ? 1 : 0,
      next_run_at: next,
    };
    await tx
      .insertInto('schedules')
      .values({ ...row, last_run_at: null, last_task_id: null })
      .onConflict((c) =>
        c.column('id').doUpdateSet({
          owner_kind: row.owner_kind,
          cron: row.cron,
          time_zone: row.time_zone,
          enabled: row.enabled,
          next_run_at: row.next_run_at,
        }),
      )
      .execute();
    this.#nudge();
    return (await this.get(id, tx))!;
  }

  async remove(tx: Tx, id: string): Promise<void> {
    await tx.deleteFrom('schedules').where('id', '=', id).execute();
    this.#nudge();
  }

  async get(id: string, tx?: Tx): Promise<ScheduleState | null> {
    const row = await (tx ?? this.deps.store.db)
      .selectFrom('schedules')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? stateOf(row) : null;
  }

  start(): void {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = (async () => {
      while (!abort.signal.aborted) {
        await this.runDue().catch((error: unknown) =>
          this.deps.logger.error({ err: error }, 'the scheduler could not look for due slots'),
        );
        const idle = await this.#idleMs().catch((error: unknown) => {
          this.deps.logger.error({ err: error }, 'the scheduler could not read its next slot');
          return 1000;
        });
        const wake = new AbortController();
        this.#wake = wake;
        await this.deps.clock
          .sleep(idle, AbortSignal.any([abort.signal, wake.signal]))
          .catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#loop = undefined;
  }

  /** Fires every slot due now, each once; answers how many this call fired. */
  async runDue(): Promise<number> {
    const now = this.deps.clock.now();
    const due = await this.deps.store.db
      .selectFrom('schedules')
      .selectAll()
      .where('enabled', '=', 1)
      .where('next_run_at', '<=', now)
      .orderBy('next_run_at')
      .execute();
    let fired = 0;
    for (const row of due) {
      const schedule = stateOf(row);
      const handler = this.#handlers.get(schedule.ownerKind);
      if (!handler) continue;
      const slot = schedule.nextRunAt!;
      let next: number | null;
      try {
        // Slots missed meanwhile are not fired one by one: the next is counted from now.
        next = nextSlot(schedule, now);
      } catch (error) {
        this.deps.logger.error(
          { schedule: schedule.id, err: error },
          'a schedule cannot be read: it is left off',
        );
        next = null;
      }
      let took = false;
      const take = async (tx: Tx, taskId: string | null) => {
        const taken = await tx
          .updateTable('schedules')
          .set({ next_run_at: next, last_run_at: now, last_task_id: taskId })
          .where('id', '=', schedule.id)
          .where('next_run_at', '=', slot)
          .executeTakeFirst();
        if (Number(taken.numUpdatedRows) !== 1)
          throw new ZenithError('ZEN_CONFLICT', 'this slot was fired already', {
            schedule: schedule.id,
            slot,
          });
        took = true;
      };
      try {
        await handler.fire({ id: schedule.id, slot, take });
        if (took) fired++;
      } catch (error) {
        if (error instanceof ZenithError && error.code === 'ZEN_CONFLICT' && !took) continue;
        this.deps.logger.error(
          { schedule: schedule.id, slot, err: error },
          'a scheduled run could not be started',
        );
        // A slot that cannot be fired is not fired again and again every poll: it is passed.
        await this.deps.store.transaction((tx) => take(tx, null)).catch(() => undefined);
      }
    }
    return fired;
  }
}
