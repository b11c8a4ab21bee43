import { cancelTask, getTask, listTasks } from '../../api/tasks.js';
import { assertId } from '../../core/ids.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { Task, TaskService } from '../../services/tasks/task-service.js';
import { actorOf, principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

export interface TaskRouteServices {
  tasks: TaskService;
  access: AccessService;
}

export async function taskRoutes(app: Api, { tasks, access }: TaskRouteServices): Promise<void> {
  serve(app, listTasks, { scope: 'filtered' }, async (request) => {
    const q = request.query;
    const limit = q.limit ?? 100;
    if (q.cursor) assertId(q.cursor, 'task');
    // Only tasks on objects the caller may read (and its own): pages are read until one is full.
    const principal = principalOf(request);
    const readable = access.filter(principal, 'task.read');
    const everywhere = access.decide(principal, 'task.read', null).allowed;
    const items: Task[] = [];
    let beforeId = q.cursor;
    for (;;) {
      const page = await tasks.list({
        ...(q.state ? { state: q.state } : {}),
        ...(q.targetId ? { targetId: q.targetId } : {}),
        ...(beforeId ? { beforeId } : {}),
        limit,
      });
      for (const task of page) {
        const visible =
          everywhere ||
          task.ownerId === principal.id ||
          (task.targetId !== null && readable(task.targetId));
        if (visible && items.length < limit) items.push(task);
      }
      if (page.length < limit || items.length >= limit) break;
      beforeId = page[page.length - 1]!.id;
    }
    return { items, nextCursor: items.length === limit ? items[items.length - 1]!.id : null };
  });
  serve(app, getTask, { scope: [{ param: 'id', kind: 'task' }] }, async (request) =>
    tasks.get(assertId(request.params.id, 'task')),
  );
  serve(
    app,
    cancelTask,
    { audit: 'task.cancel', scope: [{ param: 'id', kind: 'task' }] },
    async (request) =>
      tasks.cancel(assertId(request.params.id, 'task'), actorOf(principalOf(request))),
  );
}
