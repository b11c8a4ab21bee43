/** Tasks: long operations answer 202 with one, which is then followed here or on the event stream. */
import { Type, type Static } from 'typebox';
import { IdParams, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';

export const taskStates = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type TaskState = (typeof taskStates)[number];
/** The states a task ends in. */
export const finishedTaskStates: readonly TaskState[] = ['succeeded', 'failed', 'cancelled'];

export const TaskError = Type.Object({ code: Type.String(), message: Type.String() });

export const TaskView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  targetId: Type.Union([Type.String(), Type.Null()]),
  ownerId: Type.String(),
  state: StringEnum(taskStates),
  progress: Type.Number(),
  progressMessage: Type.Union([Type.String(), Type.Null()]),
  /** The figures behind the progress (for a migration: bytes sent and remaining, dirty-page rate, pass). */
  progressDetails: Type.Union([
    Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
    Type.Null(),
  ]),
  params: Type.Record(Type.String(), Type.Unknown()),
  result: Type.Unknown(),
  error: Type.Union([TaskError, Type.Null()]),
  attempt: Type.Number(),
  createdAt: Type.Number(),
  startedAt: NullableInstant,
  endedAt: NullableInstant,
});
export type TaskView = Static<typeof TaskView>;

export const listTasks = operation({
  method: 'GET',
  path: '/tasks',
  auth: 'task.read',
  tag: 'tasks',
  summary: 'Tasks, newest first; the cursor is the last id of the previous page',
  query: Type.Object(
    {
      state: Type.Optional(Type.Union(taskStates.map((state) => Type.Literal(state)))),
      targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      cursor: Type.Optional(Type.String({ maxLength: 64 })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    },
    { additionalProperties: false },
  ),
  success: {
    200: Type.Object({
      items: Type.Array(TaskView),
      nextCursor: Type.Union([Type.String(), Type.Null()]),
    }),
  },
});

export const getTask = operation({
  method: 'GET',
  path: '/tasks/:id',
  auth: 'task.read',
  tag: 'tasks',
  summary: 'One task: on an object the caller may read, or one the caller submitted',
  params: IdParams,
  success: { 200: TaskView },
});

export const cancelTask = operation({
  method: 'POST',
  path: '/tasks/:id/cancel',
  auth: 'task.cancel',
  tag: 'tasks',
  summary: 'Cancel a queued or running task',
  params: IdParams,
  success: { 200: TaskView },
  errors: [409],
});
