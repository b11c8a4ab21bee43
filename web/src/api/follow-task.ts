/**
 * Follows one task until it ends: every task.* event naming it fetches it again (progress events
 * carry only the percentage; the task itself has the message and details), and one fetch at the
 * start covers a task that ended before the subscription.
 */
import { ApiError } from './api-error.ts';
import type { ApiClient } from './client.ts';
import type { EventStream } from './event-stream.ts';
import { taskById } from './vm-calls.ts';
import { finishedTaskStates, type TaskDetail } from './vm-types.ts';

export interface FollowedTask {
  /** The task as it ended (succeeded, failed or cancelled). */
  done: Promise<TaskDetail>;
  /** Stops following (the task itself goes on). */
  stop(): void;
}

export function followTask(
  client: ApiClient,
  events: EventStream,
  taskId: string,
  onUpdate: (task: TaskDetail) => void = () => undefined,
): FollowedTask {
  let stopped = false;
  let unsubscribe = () => {};
  const done = new Promise<TaskDetail>((resolve, reject) => {
    const refresh = () =>
      taskById(client, taskId)
        .then((task) => {
          if (stopped) return;
          onUpdate(task);
          if (finishedTaskStates.includes(task.state)) {
            stopped = true;
            unsubscribe();
            resolve(task);
          }
        })
        .catch((error: unknown) => {
          if (stopped) return;
          stopped = true;
          unsubscribe();
          reject(error instanceof Error ? error : new Error(String(error)));
        });
    unsubscribe = events.subscribe((event) => {
      if (!stopped && event.objectId === taskId && event.type.startsWith('task.')) void refresh();
    });
    void refresh();
  });
  return {
    done,
    stop: () => {
      stopped = true;
      unsubscribe();
    },
  };
}

/** The coded reason of a failure, as a person reads it: "ZEN_CODE: message". */
export function reasonOf(failure: unknown): string {
  if (failure instanceof ApiError) return failure.reason;
  return failure instanceof Error ? failure.message : String(failure);
}

/** The reason a finished task did not succeed, or null when it did. */
export function taskFailure(task: TaskDetail): string | null {
  if (task.state === 'succeeded') return null;
  return task.error ? `${task.error.code}: ${task.error.message}` : `the task was ${task.state}`;
}
