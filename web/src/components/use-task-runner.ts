/**
 * One action at a time that answers a task: asks the API, follows the task on the event stream,
 * and keeps what a person should see (pending with progress, done, or refused with its code).
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { ApiClient } from '../api/client.ts';
import type { EventStream } from '../api/event-stream.ts';
import { followTask, reasonOf, taskFailure, type FollowedTask } from '../api/follow-task.ts';
import type { TaskDetail } from '../api/vm-types.ts';

export type TaskRun =
  | { state: 'pending'; label: string; task: TaskDetail | null }
  | { state: 'succeeded'; label: string; task: TaskDetail }
  | { state: 'refused'; label: string; reason: string };

export function useTaskRunner(client: ApiClient, events: EventStream) {
  const [run, setRun] = useState<TaskRun | null>(null);
  const followed = useRef<FollowedTask | null>(null);
  useEffect(() => () => followed.current?.stop(), []);

  /** Answers the finished task when it succeeded, null otherwise (the refusal is in `run`). */
  const start = useCallback(
    async (label: string, request: () => Promise<TaskDetail>): Promise<TaskDetail | null> => {
      followed.current?.stop();
      setRun({ state: 'pending', label, task: null });
      try {
        const accepted = await request();
        setRun({ state: 'pending', label, task: accepted });
        const follower = followTask(client, events, accepted.id, (task) =>
          setRun((current) =>
            current?.state === 'pending' && current.label === label
              ? { state: 'pending', label, task }
              : current,
          ),
        );
        followed.current = follower;
        const ended = await follower.done;
        const failure = taskFailure(ended);
        setRun(
          failure
            ? { state: 'refused', label, reason: failure }
            : { state: 'succeeded', label, task: ended },
        );
        return failure ? null : ended;
      } catch (failure) {
        setRun({ state: 'refused', label, reason: reasonOf(failure) });
        return null;
      }
    },
    [client, events],
  );
  const clear = useCallback(() => setRun(null), []);
  return { run, start, clear };
}
