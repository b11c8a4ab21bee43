/**
 * Tasks: durable rows for every long action (queued → running →
 * succeeded | failed | cancelled). At most one task runs per target at a
 * time; progress goes to the event stream; every outcome is audited. After a
 * restart, recover() finishes what the previous process left: queued tasks
 * run, running ones are checked against the hypervisor and either completed,
 * re-run or failed with ZEN_TASK_INTERRUPTED.
 */
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import type { ActionProgress } from '../../hypervisors/driver.js';
import type { TasksTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { EventBus } from '../events/event-bus.js';

export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const finalStates: readonly TaskState[] = ['succeeded', 'failed', 'cancelled'];

export interface Task {
  id: string;
  kind: string;
  targetId: string | null;
  ownerId: string;
  state: TaskState;
  progress: number;
  progressMessage: string | null;
  /** The figures behind the progress (for a migration: bytes sent and remaining, dirty-page rate, pass). */
  progressDetails: Record<string, number | string> | null;
  params: Record<string, unknown>;
  result: unknown;
  error: { code: string; message: string } | null;
  attempt: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

export interface TaskRunContext {
  task: Task;
  signal: AbortSignal;
  progress: (update: ActionProgress) => void;
}

export interface TaskKind {
  name: string;
  run(context: TaskRunContext): Promise<unknown>;
  /**
   * After a crash: given the task that was running, says whether its effect
   * is already there ('done'), whether it is safe to run again ('retry'), or
   * neither ('interrupted').
   */
  recover(task: Task): Promise<'done' | 'retry' | 'interrupted'>;
}

const maxAttempts = 2;
const progressWriteIntervalMs = 250;

function taskOf(row: TasksTable): Task {
  return {
    id: row.id,
    kind: row.kind,
    targetId: row.target_id,
    ownerId: row.owner_id,
    state: row.state as TaskState,
    progress: row.progress,
    progressMessage: row.progress_message,
    progressDetails:
      row.progress_details === null
        ? null
        : (JSON.parse(row.progress_details) as Record<string, number | string>),
    params: JSON.parse(row.params) as Record<string, unknown>,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    attempt: row.attempt,
    createdAt: Number(row.created_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    endedAt: row.ended_at === null ? null : Number(row.ended_at),
  };
}

export class TaskService {
  readonly #kinds = new Map<string, TaskKind>();
  readonly #running = new Map<string, AbortController>();
  /** Per target: the chain that serializes its tasks. */
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #owners = new Map<string, Actor>();
  #accepting = true;

  constructor(
    private readonly deps: {
      store: Store;
      events: EventBus;
      audit: AuditService;
      clock: Clock;
      logger: Logger;
      resolveActor: (id: string) => Promise<Actor>;
    },
  ) {}

  register(kind: TaskKind): void {
    this.#kinds.set(kind.name, kind);
  }

  /** Records a task and schedules it; resolves at once with the queued task. */
  async submit(input: {
    kind: string;
    targetId: string | null;
    params: Record<string, unknown>;
    owner: Actor;
    requestId?: string;
    /** Runs first in the transaction that records the task (quota reservations); throwing records nothing. */
    prepare?: (tx: Tx, taskId: string) => Promise<void>;
  }): Promise<Task> {
    if (!this.#kinds.has(input.kind))
      throw new ZenithError('ZEN_UNSUPPORTED', `no task kind '${input.kind}'`);
    if (!this.#accepting)
      throw new ZenithError('ZEN_STORE_UNAVAILABLE', 'the server is shutting down');
    const now = this.deps.clock.now();
    const row: TasksTable = {
      id: newId('task', now),
      kind: input.kind,
      target_id: input.targetId,
      owner_id: input.owner.id,
      state: 'queued',
      progress: 0,
      progress_message: null,
      progress_details: null,
      params: JSON.stringify(input.params),
      result: null,
      error_code: null,
      error_message: null,
      attempt: 1,
      created_at: now,
      started_at: null,
      ended_at: null,
    };
    const events = await this.deps.store.transaction(async (tx) => {
      await input.prepare?.(tx, row.id);
      await tx.insertInto('tasks').values(row).execute();
      await this.deps.audit.append(
        [
          {
            actor: input.owner,
            action: input.kind,
            targetId: input.targetId,
            params: input.params,
            result: 'accepted',
            requestId: input.requestId ?? null,
          },
        ],
        tx,
      );
      return this.deps.events.persist(tx, [
        {
          type: 'task.queued',
          objectId: row.id,
          data: { kind: row.kind, targetId: row.target_id },
        },
      ]);
    });
    this.deps.events.deliver(events);
    this.#owners.set(row.id, input.owner);
    const task = taskOf(row);
    this.#schedule(task);
    return task;
  }

  async get(id: string): Promise<Task> {
    const row = await this.deps.store.db
      .selectFrom('tasks')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no task ${id}`, { id });
    return taskOf(row);
  }

  /** Resolves with the task once it has ended (succeeded, failed or cancelled). */
  waitFor(id: string, signal?: AbortSignal): Promise<Task> {
    return new Promise<Task>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        outcome();
      };
      const check = () =>
        void this.get(id).then(
          (task) => finalStates.includes(task.state) && settle(() => resolve(task)),
          (error: Error) => settle(() => reject(error)),
        );
      const unsubscribe = this.deps.events.subscribe((event) => {
        if (event.objectId === id && finalStates.some((state) => event.type === `task.${state}`))
          check();
      });
      const onAbort = () => settle(() => reject(signal!.reason as Error));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  async list(options: {
    state?: TaskState;
    targetId?: string;
    ownerId?: string;
    beforeId?: string;
    limit: number;
  }): Promise<Task[]> {
    let query = this.deps.store.db.selectFrom('tasks').selectAll();
    if (options.state) query = query.where('state', '=', options.state);
    if (options.targetId) query = query.where('target_id', '=', options.targetId);
    if (options.ownerId) query = query.where('owner_id', '=', options.ownerId);
    if (options.beforeId) query = query.where('id', '<', options.beforeId);
    return (await query.orderBy('id', 'desc').limit(options.limit).execute()).map(taskOf);
  }

  /** Tasks of a kind that had not ended (queued or running), as the store has them. */
  async unfinished(kind: string): Promise<Task[]> {
    const rows = await this.deps.store.db
      .selectFrom('tasks')
      .selectAll()
      .where('kind', '=', kind)
      .where('state', 'in', ['queued', 'running'])
      .execute();
    return rows.map(taskOf);
  }

  async cancel(id: string, by: Actor): Promise<Task> {
    const task = await this.get(id);
    if (finalStates.includes(task.state))
      throw new ZenithError('ZEN_INVALID_STATE', `the task already ${task.state}`, {
        state: task.state,
      });
    const controller = this.#running.get(id);
    if (controller)
      controller.abort(new ZenithError('ZEN_TASK_CANCELLED', `cancelled by ${by.name}`));
    else
      await this.#finish(
        task,
        'cancelled',
        null,
        new ZenithError('ZEN_TASK_CANCELLED', `cancelled by ${by.name}`),
      );
    return this.get(id);
  }

  /** Finishes what a previous process left behind. Call once connections have synced. */
  async recover(): Promise<{
    resumed: number;
    completed: number;
    retried: number;
    interrupted: number;
  }> {
    const rows = await this.deps.store.db
      .selectFrom('tasks')
      .selectAll()
      .where('state', 'in', ['queued', 'running'])
      .orderBy('id')
      .execute();
    const outcome = { resumed: 0, completed: 0, retried: 0, interrupted: 0 };
    for (const row of rows) {
      const task = taskOf(row);
      const kind = this.#kinds.get(task.kind);
      if (task.state === 'queued' && kind) {
        outcome.resumed++;
        this.#schedule(task);
        continue;
      }
      let verdict: 'done' | 'retry' | 'interrupted' = 'interrupted';
      try {
        if (kind) verdict = await kind.recover(task);
      } catch (error) {
        this.deps.logger.warn(
          { task: task.id, err: (error as Error).message },
          'task recovery check failed',
        );
      }
      if (verdict === 'retry' && task.attempt < maxAttempts) {
        outcome.retried++;
        await this.deps.store.db
          .updateTable('tasks')
          .set({
            state: 'queued',
            attempt: task.attempt + 1,
            progress: 0,
            progress_message: 'retrying after a restart',
            progress_details: null,
          })
          .where('id', '=', task.id)
          .execute();
        this.#schedule({ ...task, state: 'queued', attempt: task.attempt + 1 });
      } else if (verdict === 'done') {
        outcome.completed++;
        await this.#finish(task, 'succeeded', { recovered: true }, null);
      } else {
        outcome.interrupted++;
        await this.#finish(
          task,
          'failed',
          null,
          new ZenithError(
            'ZEN_TASK_INTERRUPTED',
            'the control plane stopped while this task ran, and it could not be completed safely',
          ),
        );
      }
    }
    return outcome;
  }

  /** Stops taking tasks and waits for the running ones (up to the timeout). */
  async drain(timeoutMs = 10_000): Promise<void> {
    this.#accepting = false;
    const timeout = new AbortController();
    await Promise.race([
      Promise.allSettled([...this.#lanes.values()]),
      this.deps.clock.sleep(timeoutMs, timeout.signal).catch(() => undefined),
    ]);
    // The timeout's timer must not outlive the drain: it would keep the process alive that long.
    timeout.abort();
  }

  #schedule(task: Task): void {
    const lane = task.targetId ?? task.id;
    const previous = this.#lanes.get(lane) ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(() => this.#execute(task))
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, task: task.id }, 'task runner failed'),
      )
      .then(() => {
        if (this.#lanes.get(lane) === next) this.#lanes.delete(lane);
      });
    this.#lanes.set(lane, next);
  }

  async #execute(queued: Task): Promise<void> {
    const current = await this.get(queued.id);
    if (current.state !== 'queued') return; // cancelled while it waited
    const kind = this.#kinds.get(current.kind)!;
    const controller = new AbortController();
    this.#running.set(current.id, controller);
    const startedAt = this.deps.clock.now();
    await this.deps.store.db
      .updateTable('tasks')
      .set({ state: 'running', started_at: startedAt })
      .where('id', '=', current.id)
      .execute();
    await this.deps.events.publish([
      {
        type: 'task.running',
        objectId: current.id,
        data: { kind: current.kind, targetId: current.targetId },
      },
    ]);
    let lastWrite = 0;
    const progress = (update: ActionProgress) => {
      const now = this.deps.clock.now();
      if (now - lastWrite < progressWriteIntervalMs && update.percent < 100) return;
      lastWrite = now;
      const percent = Math.max(0, Math.min(100, Math.round(update.percent)));
      void this.deps.store.db
        .updateTable('tasks')
        .set({
          progress: percent,
          progress_message: update.message ?? null,
          progress_details: update.details ? JSON.stringify(update.details) : null,
        })
        .where('id', '=', current.id)
        .where('state', '=', 'running')
        .execute()
        .then(() =>
          this.deps.events.publish([
            {
              type: 'task.progress',
              objectId: current.id,
              data: { percent, message: update.message ?? null, ...(update.details ?? {}) },
            },
          ]),
        )
        .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'progress write failed'));
    };
    try {
      const result = await kind.run({
        task: { ...current, state: 'running', startedAt },
        signal: controller.signal,
        progress,
      });
      await this.#finish(current, 'succeeded', result ?? null, null);
    } catch (error) {
      const coded =
        controller.signal.aborted && isZenithError(controller.signal.reason)
          ? controller.signal.reason
          : error;
      const zenithError = isZenithError(coded)
        ? coded
        : new ZenithError(
            'ZEN_DRIVER_ERROR',
            coded instanceof Error ? coded.message : String(coded),
          );
      if (!isZenithError(coded))
        this.deps.logger.error(
          { err: coded, task: current.id },
          'task failed with an uncoded error',
        );
      await this.#finish(
        current,
        zenithError.code === 'ZEN_TASK_CANCELLED' ? 'cancelled' : 'failed',
        null,
        zenithError,
      );
    } finally {
      this.#running.delete(current.id);
    }
  }

  async #finish(
    task: Task,
    state: TaskState,
    result: unknown,
    error: ZenithError | null,
  ): Promise<void> {
    const owner = this.#owners.get(task.id) ?? (await this.deps.resolveActor(task.ownerId));
    const endedAt = this.deps.clock.now();
    const events = await this.deps.store.transaction(async (tx) => {
      await tx
        .updateTable('tasks')
        .set({
          state,
          progress: state === 'succeeded' ? 100 : task.progress,
          result: result === null ? null : JSON.stringify(result),
          error_code: error?.code ?? null,
          error_message: error?.message ?? null,
          ended_at: endedAt,
        })
        .where('id', '=', task.id)
        .execute();
      await this.deps.audit.append(
        [
          {
            actor: owner,
            action: `${task.kind}.${state === 'succeeded' ? 'completed' : state}`,
            targetId: task.targetId,
            params: { taskId: task.id, attempt: task.attempt },
            result: state === 'succeeded' ? 'succeeded' : 'failed',
            errorCode: error?.code ?? null,
          },
        ],
        tx,
      );
      return this.deps.events.persist(tx, [
        {
          type: `task.${state}`,
          objectId: task.id,
          data: {
            kind: task.kind,
            targetId: task.targetId,
            ...(error ? { error: { code: error.code, message: error.message } } : {}),
          },
        },
      ]);
    });
    this.#owners.delete(task.id);
    this.deps.events.deliver(events);
  }
}
