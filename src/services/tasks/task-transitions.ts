/**
 * The task lifecycle as one table (docs/tasks.md shows it): each transition applies only from
 * the states it names, and the store decides, not a read before the write: one
 * UPDATE … WHERE id = ? AND state IN (from) per transition, whose row (none when another
 * transition came first) says whether it applied. A cancel landing while the runner picks the
 * task up, a finish after a cancel, recovery next to a live runner: whichever writes first wins,
 * and the other learns that it lost and writes nothing more (no audit record, no event).
 */
import type { Updateable } from 'kysely';
import type { TasksTable } from '../../store/schema.js';
import type { Db, Tx } from '../../store/store.js';
import type { TaskState } from './task.js';

interface TransitionSpec {
  from: readonly TaskState[];
  to: TaskState;
}

export const taskTransitions = {
  /** The runner takes a queued task up. */
  start: { from: ['queued'], to: 'running' },
  /** Its work completed. */
  succeed: { from: ['running'], to: 'succeeded' },
  /** Its work failed. */
  fail: { from: ['running'], to: 'failed' },
  /** Cancelled before it started: it never runs. */
  cancelQueued: { from: ['queued'], to: 'cancelled' },
  /**
   * Its runner stopped on a cancel; or a cancel of a task no runner of this process holds (left
   * running by a process that stopped before recovery looked at it).
   */
  cancelRunning: { from: ['running'], to: 'cancelled' },
  /** After a restart: safe to run again (attempt + 1). */
  retry: { from: ['running'], to: 'queued' },
  /** After a restart: its effect is there. */
  recovered: { from: ['running'], to: 'succeeded' },
  /** After a restart: it cannot be completed safely (or its kind is gone). */
  interrupt: { from: ['queued', 'running'], to: 'failed' },
} as const satisfies Record<string, TransitionSpec>;

export type TaskTransition = keyof typeof taskTransitions;

/** What a transition may write besides the state. */
export type TransitionChanges = Omit<Updateable<TasksTable>, 'id' | 'state'>;

/**
 * Applies a transition atomically: answers the row as it is now when it applied, undefined when
 * the task was in none of the states it starts from (or does not exist).
 */
export async function transitionTask(
  db: Db | Tx,
  taskId: string,
  transition: TaskTransition,
  changes: TransitionChanges = {},
): Promise<TasksTable | undefined> {
  const { from, to } = taskTransitions[transition];
  return db
    .updateTable('tasks')
    .set({ ...changes, state: to })
    .where('id', '=', taskId)
    .where('state', 'in', [...from])
    .returningAll()
    .executeTakeFirst();
}
