/** A running task's progress, to its row and the event stream. */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { ActionProgress } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { EventBus } from '../events/event-bus.js';

const progressWriteIntervalMs = 250;

/**
 * What a task's work reports its progress to: written at most every 250 ms (and at 100 %), so a
 * chatty driver does not cost a write per report; only while the task is still running.
 */
export function progressWriter(
  deps: { store: Store; events: EventBus; clock: Clock; logger: Logger },
  taskId: string,
): (update: ActionProgress) => void {
  let lastWrite = 0;
  return (update) => {
    const now = deps.clock.now();
    if (now - lastWrite < progressWriteIntervalMs && update.percent < 100) return;
    lastWrite = now;
    const percent = Math.max(0, Math.min(100, Math.round(update.percent)));
    void deps.store.db
      .updateTable('tasks')
      .set({
        progress: percent,
        progress_message: update.message ?? null,
        progress_details: update.details ? JSON.stringify(update.details) : null,
      })
      .where('id', '=', taskId)
      .where('state', '=', 'running')
      .execute()
      .then(() =>
        deps.events.publish([
          {
            type: 'task.progress',
            objectId: taskId,
            data: { percent, message: update.message ?? null, ...(update.details ?? {}) },
          },
        ]),
      )
      .catch((error: unknown) => deps.logger.warn({ err: error }, 'progress write failed'));
  };
}
