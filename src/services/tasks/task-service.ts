/**
 * Tasks: durable rows for every long action, moved through the states of
 * task-transitions.ts (queued → running → succeeded | failed | cancelled), each
 * move decided atomically by the store. At most one task runs per target at a
 * time; progress goes to the event stream; every outcome is audited. After a
 * restart, recover() finishes what the previous process left: queued tasks
 * run, running ones are checked against the hypervisor and either completed,
 * re-run or failed with ZEN_TASK_INTERRUPTED.
 */
import type { Static, TSchema } from 'typebox';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import type { TasksTable } from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';
import type { Actor, AuditService } from '../audit/audit-service.js';
import type { EventBus } from '../events/event-bus.js';
import { finalStates, taskOf, type StoredParams, type Task, type TaskState } from './task.js';
import {
  typedTask,
  type RecoveryVerdict,
  type TaskKind,
  type TaskKindDefinition,
  type TaskRunContext,
} from './task-kind.js';
import { progressWriter } from './task-progress.js';
import { taskTransitions, transitionTask, type TaskTransition } from './task-transitions.js';
import { rowById } from '../../store/rows.js';

// The task's shapes live beside it; callers keep importing them from the service.
export { finalStates, type Task, type TaskState } from './task.js';
export type { RecoveryVerdict, TaskKind, TaskRunContext } from './task-kind.js';

/** A registered kind, its parameters read as its own before it sees a task. */
interface KindRunner {
  run(context: TaskRunContext<StoredParams>): Promise<unknown>;
  recover(task: Task): Promise<RecoveryVerdict>;
  maxAttempts: number;
  /** The lane its tasks wait in (default: their target's). */
  lane: ((task: Task) => string) | undefined;
}

const defaultMaxAttempts = 2;

export class TaskService {
  readonly #kinds = new Map<string, KindRunner>();
  /** Tasks this process runs now, by id: a cancel aborts them here. */
  readonly #running = new Map<string, AbortController>();
  /** Tasks this process has scheduled or runs: live, never a previous process's leftovers. */
  readonly #live = new Set<string>();
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

  /** Makes a kind runnable; answers it, to submit tasks of it with its parameters typed. */
  register<S extends TSchema>(kind: TaskKindDefinition<S>): TaskKind<Static<S>> {
    this.#kinds.set(kind.name, {
      run: (context) => kind.run({ ...context, task: typedTask(kind, context.task) }),
      recover: (task) => kind.recover(typedTask(kind, task)),
      maxAttempts: kind.maxAttempts ?? defaultMaxAttempts,
      lane: kind.lane,
    });
    return kind;
  }

  /** Records a task and schedules it; resolves at once with the queued task. */
  async submit<P>(input: {
    kind: TaskKind<P>;
    targetId: string | null;
    params: P;
    owner: Actor;
    requestId?: string;
    /** Runs first in the transaction that records the task (quota reservations); throwing records nothing. */
    prepare?: (tx: Tx, taskId: string) => Promise<void>;
  }): Promise<Task<P>> {
    const { kind } = input;
    if (!this.#kinds.has(kind.name))
      throw new ZenithError('ZEN_UNSUPPORTED', `no task kind '${kind.name}'`);
    if (!this.#accepting)
      throw new ZenithError('ZEN_STORE_UNAVAILABLE', 'the server is shutting down');
    const now = this.deps.clock.now();
    const row: TasksTable = {
      id: newId('task', now),
      kind: kind.name,
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
    // As it will come back from the store: a kind whose schema refuses its own parameters fails here.
    const stored = taskOf(row);
    const task = typedTask(kind, stored);
    const events = await this.deps.store.transaction(async (tx) => {
      await input.prepare?.(tx, row.id);
      await tx.insertInto('tasks').values(row).execute();
      await this.deps.audit.append(
        [
          {
            actor: input.owner,
            action: kind.name,
            targetId: input.targetId,
            params: stored.params,
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
    this.#schedule(stored);
    return task;
  }

  async get(id: string): Promise<Task> {
    const row = await rowById(this.deps.store.db, 'tasks', id, `no task ${id}`);
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
    /** Any of these states (with `state`, both must hold). */
    states?: TaskState[];
    kind?: string;
    targetId?: string;
    ownerId?: string;
    beforeId?: string;
    limit: number;
  }): Promise<Task[]> {
    let query = this.deps.store.db.selectFrom('tasks').selectAll();
    if (options.state) query = query.where('state', '=', options.state);
    if (options.states) query = query.where('state', 'in', options.states);
    if (options.kind) query = query.where('kind', '=', options.kind);
    if (options.targetId) query = query.where('target_id', '=', options.targetId);
    if (options.ownerId) query = query.where('owner_id', '=', options.ownerId);
    if (options.beforeId) query = query.where('id', '<', options.beforeId);
    return (await query.orderBy('id', 'desc').limit(options.limit).execute()).map(taskOf);
  }

  /** Tasks of a kind that had not ended (queued or running), as the store has them. */
  async unfinished<P>(kind: TaskKind<P>): Promise<Task<P>[]> {
    const rows = await this.deps.store.db
      .selectFrom('tasks')
      .selectAll()
      .where('kind', '=', kind.name)
      .where('state', 'in', ['queued', 'running'])
      .execute();
    const tasks: Task<P>[] = [];
    for (const row of rows) {
      try {
        tasks.push(typedTask(kind, taskOf(row)));
      } catch (error) {
        // Its run and its recovery refuse it the same way: it ends failed, never run.
        this.deps.logger.warn({ err: error, task: row.id }, 'an unfinished task cannot be read');
      }
    }
    return tasks;
  }

  /**
   * Cancels a queued task (it never runs) or stops a running one (its runner ends it cancelled).
   * Racing the runner's start, a finish or recovery, the store decides who came first; a task that
   * ended first is ZEN_INVALID_STATE.
   */
  async cancel(id: string, by: Actor): Promise<Task> {
    const reason = () => new ZenithError('ZEN_TASK_CANCELLED', `cancelled by ${by.name}`);
    // Each turn that does not apply saw the task move on; it ends after a few.
    for (;;) {
      const task = await this.get(id);
      if (finalStates.includes(task.state))
        throw new ZenithError('ZEN_INVALID_STATE', `the task already ${task.state}`, {
          state: task.state,
        });
      // Registered before its start is written: a runner of this process is found even then.
      const controller = this.#running.get(id);
      if (controller) {
        controller.abort(reason());
        return this.get(id);
      }
      // Running with no runner here: left by a process that stopped, before recovery took it up.
      const transition = task.state === 'queued' ? 'cancelQueued' : 'cancelRunning';
      if (await this.#end(task, transition, null, reason())) return this.get(id);
    }
  }

  /**
   * Finishes what a previous process left behind. Call once connections have synced. Tasks this
   * process has scheduled or runs are live, not leftovers: recovery leaves them alone.
   */
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
      if (this.#live.has(row.id)) continue;
      const task = taskOf(row);
      const kind = this.#kinds.get(task.kind);
      if (task.state === 'queued' && kind) {
        outcome.resumed++;
        this.#schedule(task);
        continue;
      }
      let verdict: RecoveryVerdict = 'interrupted';
      try {
        if (kind) verdict = await kind.recover(task);
      } catch (error) {
        this.deps.logger.warn(
          { task: task.id, err: (error as Error).message },
          'task recovery check failed',
        );
      }
      if (this.#live.has(task.id)) continue;
      if (verdict === 'retry' && kind && task.attempt < kind.maxAttempts) {
        const requeued = await transitionTask(this.deps.store.db, task.id, 'retry', {
          attempt: task.attempt + 1,
          progress: 0,
          progress_message: 'retrying after a restart',
          progress_details: null,
        });
        if (!requeued) continue; // cancelled meanwhile
        outcome.retried++;
        this.#schedule(taskOf(requeued));
      } else if (verdict === 'done') {
        if (await this.#end(task, 'recovered', { recovered: true }, null)) outcome.completed++;
      } else {
        const interrupted = new ZenithError(
          'ZEN_TASK_INTERRUPTED',
          'the control plane stopped while this task ran, and it could not be completed safely',
        );
        if (await this.#end(task, 'interrupt', null, interrupted)) outcome.interrupted++;
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
    if (this.#live.has(task.id)) return;
    this.#live.add(task.id);
    const lane = this.#kinds.get(task.kind)?.lane?.(task) ?? task.targetId ?? task.id;
    const previous = this.#lanes.get(lane) ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(() => this.#execute(task))
      .catch((error: unknown) =>
        this.deps.logger.error({ err: error, task: task.id }, 'task runner failed'),
      )
      .then(() => {
        this.#live.delete(task.id);
        if (this.#lanes.get(lane) === next) this.#lanes.delete(lane);
      });
    this.#lanes.set(lane, next);
  }

  async #execute(queued: Task): Promise<void> {
    const kind = this.#kinds.get(queued.kind)!;
    const controller = new AbortController();
    // Before the start is written, so that a cancel landing meanwhile finds this runner.
    this.#running.set(queued.id, controller);
    try {
      const current = await this.#start(queued.id);
      if (!current) return; // cancelled (or ended) while it waited: it never runs
      if (controller.signal.aborted) {
        await this.#end(current, 'cancelRunning', null, codedError(controller.signal.reason));
        return;
      }
      try {
        const result = await kind.run({
          task: current,
          signal: controller.signal,
          progress: progressWriter(this.deps, current.id),
        });
        await this.#end(current, 'succeed', result ?? null, null);
      } catch (error) {
        const cause =
          controller.signal.aborted && isZenithError(controller.signal.reason)
            ? controller.signal.reason
            : error;
        if (!isZenithError(cause))
          this.deps.logger.error(
            { err: cause, task: current.id },
            'task failed with an uncoded error',
          );
        const coded = codedError(cause);
        await this.#end(
          current,
          coded.code === 'ZEN_TASK_CANCELLED' ? 'cancelRunning' : 'fail',
          null,
          coded,
        );
      }
    } finally {
      this.#running.delete(queued.id);
    }
  }

  /** queued → running with its event; the task as it starts, or undefined when it may not. */
  async #start(id: string): Promise<Task | undefined> {
    const startedAt = this.deps.clock.now();
    const started = await this.deps.store.transaction(async (tx) => {
      const row = await transitionTask(tx, id, 'start', { started_at: startedAt });
      if (!row) return undefined;
      const events = await this.deps.events.persist(tx, [
        {
          type: 'task.running',
          objectId: id,
          data: { kind: row.kind, targetId: row.target_id },
        },
      ]);
      return { task: taskOf(row), events };
    });
    if (!started) return undefined;
    this.deps.events.deliver(started.events);
    return started.task;
  }

  /**
   * Ends the task by a transition, with its audit record and event, all in one transaction. False
   * when the transition did not apply (the task had moved on: another end won), and nothing is written.
   */
  async #end(
    task: Task,
    transition: TaskTransition,
    result: unknown,
    error: ZenithError | null,
  ): Promise<boolean> {
    const state = taskTransitions[transition].to;
    const owner = this.#owners.get(task.id) ?? (await this.deps.resolveActor(task.ownerId));
    const endedAt = this.deps.clock.now();
    const events = await this.deps.store.transaction(async (tx) => {
      const ended = await transitionTask(tx, task.id, transition, {
        progress: state === 'succeeded' ? 100 : task.progress,
        result: result === null ? null : JSON.stringify(result),
        error_code: error?.code ?? null,
        error_message: error?.message ?? null,
        ended_at: endedAt,
      });
      if (!ended) return undefined;
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
    if (!events) return false;
    this.#owners.delete(task.id);
    this.deps.events.deliver(events);
    return true;
  }
}

/** What a task's failure is recorded as: its coded error, or ZEN_DRIVER_ERROR with the message. */
function codedError(cause: unknown): ZenithError {
  if (isZenithError(cause)) return cause;
  return new ZenithError(
    'ZEN_DRIVER_ERROR',
    cause instanceof Error ? cause.message : String(cause),
  );
}
