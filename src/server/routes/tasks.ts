import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { assertId } from '../../core/ids.js';
import type { ControlPlane } from '../../app/control-plane.js';
import type { Task } from '../../services/tasks/task-service.js';
import { actorOf, principalOf } from '../auth.js';
import { IdParams, TaskView } from '../schemas.js';

export async function taskRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/tasks',
    {
      config: { permission: 'task.read', scope: 'filtered' },
      schema: {
        tags: ['tasks'],
        summary: 'Tasks, newest first; the cursor is the last id of the previous page',
        querystring: Type.Object(
          {
            state: Type.Optional(
              Type.Union(
                ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) =>
                  Type.Literal(s),
                ),
              ),
            ),
            targetId: Type.Optional(Type.String({ maxLength: 64 })),
            cursor: Type.Optional(Type.String({ maxLength: 64 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(TaskView),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = q.limit ?? 100;
      if (q.cursor) assertId(q.cursor, 'task');
      // Only tasks on objects the caller may read (and its own): pages are read until one is full.
      const principal = principalOf(request);
      const readable = plane.access.filter(principal, 'task.read');
      const everywhere = plane.access.decide(principal, 'task.read', null).allowed;
      const items: Task[] = [];
      let beforeId = q.cursor;
      for (;;) {
        const page = await plane.tasks.list({
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
    },
  );
  app.get(
    '/tasks/:id',
    {
      config: { permission: 'task.read', scope: [{ param: 'id', kind: 'task' }] },
      schema: { tags: ['tasks'], params: IdParams, response: { 200: TaskView } },
    },
    async (request) => plane.tasks.get(assertId(request.params.id, 'task')),
  );
  app.post(
    '/tasks/:id/cancel',
    {
      config: {
        permission: 'task.cancel',
        audit: 'task.cancel',
        scope: [{ param: 'id', kind: 'task' }],
      },
      schema: {
        tags: ['tasks'],
        summary: 'Cancel a queued or running task',
        params: IdParams,
        response: { 200: TaskView },
      },
    },
    async (request) =>
      plane.tasks.cancel(assertId(request.params.id, 'task'), actorOf(principalOf(request))),
  );
}
