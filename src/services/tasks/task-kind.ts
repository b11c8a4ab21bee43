/** A kind of task (vm.start, vm.clone, plan.apply, …): how it runs and how it recovers. */
import type { ActionProgress } from '../../hypervisors/driver.js';
import type { Task } from './task.js';

export interface TaskRunContext {
  task: Task;
  signal: AbortSignal;
  progress: (update: ActionProgress) => void;
}

/**
 * After a crash, for a task that was running: its effect is already there ('done'), it is safe to
 * run again ('retry'), or neither ('interrupted').
 */
export type RecoveryVerdict = 'done' | 'retry' | 'interrupted';

export interface TaskKind {
  name: string;
  run(context: TaskRunContext): Promise<unknown>;
  recover(task: Task): Promise<RecoveryVerdict>;
}
