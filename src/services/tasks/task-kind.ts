/**
 * A kind of task (vm.start, vm.clone, plan.apply, …), generic over its parameters. The kind
 * declares them once, as a schema: submitting takes them typed, and a task coming back from the
 * store (JSON written by this version or an older one) is checked against it here, in one place,
 * before the kind's run or recovery reads it.
 */
import type { Static, TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ZenithError } from '../../core/errors.js';
import type { ActionProgress } from '../../hypervisors/driver.js';
import type { StoredParams, Task } from './task.js';

export interface TaskRunContext<P = StoredParams> {
  task: Task<P>;
  signal: AbortSignal;
  progress: (update: ActionProgress) => void;
}

/**
 * After a crash, for a task that was running: its effect is already there ('done'), it is safe to
 * run again ('retry'), or neither ('interrupted').
 */
export type RecoveryVerdict = 'done' | 'retry' | 'interrupted';

export interface TaskKind<P> {
  readonly name: string;
  /** Its parameters as stored; unknown fields pass (an older version may have written more). */
  readonly params: TSchema;
  run(context: TaskRunContext<P>): Promise<unknown>;
  recover(task: Task<P>): Promise<RecoveryVerdict>;
  /**
   * How many runs a task of this kind may have across restarts (2 unless said): a kind whose run
   * settles what an earlier run left under way (a live migration) takes more.
   */
  readonly maxAttempts?: number;
  /**
   * The lane its tasks run in, one after the other: by default their target's, so that tasks on
   * one object never overlap. A kind that may run beside its target's other tasks (a read of a
   * host's storage beside a VM created there) names a lane of its own.
   */
  readonly lane?: (task: Task) => string;
}

/** A kind as it is declared: its parameters are its schema's type. */
export interface TaskKindDefinition<S extends TSchema> extends TaskKind<Static<S>> {
  readonly params: S;
}

/** The task with its parameters read as its kind's; ZEN_INTERNAL when they are not. */
export function typedTask<P>(kind: TaskKind<P>, task: Task): Task<P> {
  if (!Value.Check(kind.params, task.params)) {
    const problems = [...Value.Errors(kind.params, task.params)]
      .slice(0, 3)
      .map((error) => `${error.instancePath || '/'} ${error.message}`);
    throw new ZenithError(
      'ZEN_INTERNAL',
      `task ${task.id} has parameters a ${kind.name} task cannot read: ${problems.join('; ')}`,
      { taskId: task.id, kind: kind.name, problems },
    );
  }
  return task as Task<P>;
}
