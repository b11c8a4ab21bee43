/**
 * The task state machine on both stores: the transition table itself (each transition from every
 * state), a task's life through the service, recovery's outcomes, and parameters typed by kind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from 'typebox';
import { isZenithError } from '../../../src/core/errors.js';
import type { Actor } from '../../../src/services/audit/audit-service.js';
import type { TaskState } from '../../../src/services/tasks/task.js';
import {
  taskTransitions,
  transitionTask,
  type TaskTransition,
} from '../../../src/services/tasks/task-transitions.js';
import type { TasksTable } from '../../../src/store/schema.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const alice: Actor = { id: 'usr_alice', kind: 'user', name: 'alice' };
const states: TaskState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let rowCount = 0;
/** A task row as a process leaves it, in the given state. */
function row(kind: string, state: TaskState, extra: Partial<TasksTable> = {}): TasksTable {
  rowCount++;
  return {
    id: `task_01LIFECYCLE${String(rowCount).padStart(15, '0')}`,
    kind,
    target_id: `obj_lifecycle${rowCount}`,
    owner_id: 'system',
    state,
    progress: state === 'running' ? 30 : 0,
    progress_message: null,
    progress_details: null,
    params: '{}',
    result: null,
    error_code: null,
    error_message: null,
    attempt: 1,
    created_at: 1,
    started_at: state === 'queued' ? null : 2,
    ended_at: null,
    ...extra,
  };
}

for (const kind of storeKinds) {
  describe(`the task state machine on ${kind}`, () => {
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind });
    });
    after(async () => t.close());

    const eventsOf = async (taskId: string) =>
      (
        await t.plane.store.db
          .selectFrom('events')
          .select('type')
          .where('object_id', '=', taskId)
          .orderBy('seq')
          .execute()
      ).map((r) => r.type);
    const insert = async (task: TasksTable) => {
      await t.plane.store.db.insertInto('tasks').values(task).execute();
      return task.id;
    };

    test('each transition applies from the states the table names, and from no other', async () => {
      for (const transition of Object.keys(taskTransitions) as TaskTransition[]) {
        const { from, to } = taskTransitions[transition];
        for (const state of states) {
          const id = await insert(row('test.table', state));
          const applied = await transitionTask(t.plane.store.db, id, transition, {
            progress_message: 'moved',
          });
          const now = await t.plane.store.db
            .selectFrom('tasks')
            .select(['state', 'progress_message'])
            .where('id', '=', id)
            .executeTakeFirstOrThrow();
          if ((from as readonly TaskState[]).includes(state)) {
            assert.equal(applied?.state, to, `${transition} from ${state}`);
            assert.deepEqual(now, { state: to, progress_message: 'moved' });
          } else {
            assert.equal(applied, undefined, `${transition} from ${state} must not apply`);
            assert.deepEqual(now, { state, progress_message: null }, 'and writes nothing');
          }
        }
      }
      assert.equal(
        await transitionTask(t.plane.store.db, 'task_01NOSUCHTASK0000000000000', 'start'),
        undefined,
      );
      // Not leftovers for the recovery test below.
      await t.plane.store.db.deleteFrom('tasks').where('kind', '=', 'test.table').execute();
    });

    test('a task runs once: queued, running, then its outcome, audited and announced', async () => {
      const echo = t.plane.tasks.register({
        name: 'test.echo',
        params: Type.Object({ word: Type.String(), fail: Type.Optional(Type.Boolean()) }),
        run: async ({ task }) => {
          if (task.params.fail) throw new Error(`no ${task.params.word}`);
          return { said: task.params.word };
        },
        recover: async () => 'retry',
      });
      const ok = await t.plane.tasks.submit({
        kind: echo,
        targetId: 'obj_echo',
        params: { word: 'hello' },
        owner: alice,
      });
      assert.deepEqual([ok.state, ok.params], ['queued', { word: 'hello' }]);
      const succeeded = await t.plane.tasks.waitFor(ok.id);
      assert.deepEqual(
        [succeeded.state, succeeded.result, succeeded.progress, succeeded.attempt],
        ['succeeded', { said: 'hello' }, 100, 1],
      );
      assert.deepEqual(await eventsOf(ok.id), ['task.queued', 'task.running', 'task.succeeded']);

      const bad = await t.plane.tasks.submit({
        kind: echo,
        targetId: 'obj_echo',
        params: { word: 'luck', fail: true },
        owner: alice,
      });
      const failed = await t.plane.tasks.waitFor(bad.id);
      assert.deepEqual(
        [failed.state, failed.error],
        ['failed', { code: 'ZEN_DRIVER_ERROR', message: 'no luck' }],
      );
      const audit = await t.plane.store.db
        .selectFrom('audit')
        .select(['action', 'result', 'error_code'])
        .where('action', 'like', 'test.echo%')
        .orderBy('seq')
        .execute();
      assert.deepEqual(
        audit.map((r) => [r.action, r.result, r.error_code]),
        [
          ['test.echo', 'accepted', null],
          ['test.echo.completed', 'succeeded', null],
          ['test.echo', 'accepted', null],
          ['test.echo.failed', 'failed', 'ZEN_DRIVER_ERROR'],
        ],
      );
    });

    test("a kind with a lane of its own runs beside its target's other tasks, and its own tasks one at a time", async () => {
      const gate = deferred();
      const held = t.plane.tasks.register({
        name: `test.lane.held.${kind}`,
        params: Type.Object({}),
        run: async () => gate.promise,
        recover: async () => 'retry',
      });
      const order: string[] = [];
      const side = t.plane.tasks.register({
        name: `test.lane.side.${kind}`,
        params: Type.Object({ name: Type.String() }),
        run: async ({ task }) => {
          order.push(`${task.params.name} starts`);
          await new Promise((resolve) => setTimeout(resolve, 20));
          order.push(`${task.params.name} ends`);
        },
        recover: async () => 'retry',
        lane: (task) => `side:${task.targetId}`,
      });
      const blocking = await t.plane.tasks.submit({
        kind: held,
        targetId: 'obj_lane',
        params: {},
        owner: alice,
      });
      const first = await t.plane.tasks.submit({
        kind: side,
        targetId: 'obj_lane',
        params: { name: 'a' },
        owner: alice,
      });
      const second = await t.plane.tasks.submit({
        kind: side,
        targetId: 'obj_lane',
        params: { name: 'b' },
        owner: alice,
      });
      // Both finish while the target's other task still runs.
      assert.equal((await t.plane.tasks.waitFor(second.id)).state, 'succeeded');
      assert.equal((await t.plane.tasks.waitFor(first.id)).state, 'succeeded');
      assert.deepEqual(order, ['a starts', 'a ends', 'b starts', 'b ends']);
      assert.equal((await t.plane.tasks.get(blocking.id)).state, 'running');
      gate.resolve();
      assert.equal((await t.plane.tasks.waitFor(blocking.id)).state, 'succeeded');
    });

    test('cancel: a queued task never runs, a running one stops, an ended one refuses', async () => {
      const gate = deferred();
      const blocker = t.plane.tasks.register({
        name: 'test.gate',
        params: Type.Object({}),
        run: () => gate.promise,
        recover: async () => 'retry',
      });
      let runs = 0;
      const started = deferred();
      const waiter = t.plane.tasks.register({
        name: 'test.waiter',
        params: Type.Object({}),
        run: ({ signal }) => {
          runs++;
          started.resolve();
          return new Promise((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason as Error)),
          );
        },
        recover: async () => 'retry',
      });
      const first = await t.plane.tasks.submit({
        kind: blocker,
        targetId: 'obj_cancel',
        params: {},
        owner: alice,
      });
      const queued = await t.plane.tasks.submit({
        kind: waiter,
        targetId: 'obj_cancel',
        params: {},
        owner: alice,
      });
      const answer = await t.plane.tasks.cancel(queued.id, alice);
      assert.equal(answer.state, 'cancelled');
      assert.deepEqual(answer.error, { code: 'ZEN_TASK_CANCELLED', message: 'cancelled by alice' });
      gate.resolve();
      await t.plane.tasks.waitFor(first.id);

      const running = await t.plane.tasks.submit({
        kind: waiter,
        targetId: 'obj_cancel',
        params: {},
        owner: alice,
      });
      await started.promise;
      await t.plane.tasks.cancel(running.id, alice);
      const stopped = await t.plane.tasks.waitFor(running.id);
      assert.equal(stopped.state, 'cancelled');
      assert.equal(stopped.error?.code, 'ZEN_TASK_CANCELLED');
      assert.equal(runs, 1, 'the queued task never ran; the running one ran once');
      assert.deepEqual(await eventsOf(queued.id), ['task.queued', 'task.cancelled']);
      assert.deepEqual(await eventsOf(running.id), [
        'task.queued',
        'task.running',
        'task.cancelled',
      ]);

      await assert.rejects(t.plane.tasks.cancel(stopped.id, alice), (error: unknown) => {
        assert.ok(isZenithError(error));
        assert.deepEqual(
          [error.code, error.details],
          ['ZEN_INVALID_STATE', { state: 'cancelled' }],
        );
        return true;
      });
    });

    test('recovery: leftovers resume, complete, run again once, or fail as interrupted', async () => {
      const verdicts = new Map<string, 'done' | 'retry' | 'interrupted'>();
      const runs: string[] = [];
      t.plane.tasks.register({
        name: 'test.leftover',
        params: Type.Object({}),
        run: async ({ task }) => {
          runs.push(task.id);
          return { attempt: task.attempt };
        },
        recover: async (task) => verdicts.get(task.id) ?? 'interrupted',
      });
      const queued = await insert(row('test.leftover', 'queued'));
      const done = await insert(row('test.leftover', 'running'));
      const retry = await insert(row('test.leftover', 'running'));
      const retriedOnce = await insert(row('test.leftover', 'running', { attempt: 2 }));
      const interrupted = await insert(row('test.leftover', 'running'));
      const unknownQueued = await insert(row('test.gone', 'queued'));
      const unknownRunning = await insert(row('test.gone', 'running'));
      verdicts.set(done, 'done').set(retry, 'retry').set(retriedOnce, 'retry');
      verdicts.set(interrupted, 'interrupted');

      const outcome = await t.plane.tasks.recover();
      assert.deepEqual(outcome, { resumed: 1, completed: 1, retried: 1, interrupted: 4 });
      const ended = async (id: string) => t.plane.tasks.waitFor(id);
      assert.deepEqual((await ended(queued)).result, { attempt: 1 });
      assert.deepEqual(
        [(await ended(done)).state, (await ended(done)).result],
        ['succeeded', { recovered: true }],
      );
      const again = await ended(retry);
      assert.deepEqual(
        [again.state, again.attempt, again.result],
        ['succeeded', 2, { attempt: 2 }],
      );
      for (const id of [retriedOnce, interrupted, unknownQueued, unknownRunning]) {
        const task = await ended(id);
        assert.deepEqual([task.state, task.error?.code], ['failed', 'ZEN_TASK_INTERRUPTED'], id);
      }
      assert.deepEqual(runs.sort(), [queued, retry].sort(), 'only the resumed and retried ran');
      assert.deepEqual(await t.plane.tasks.recover(), {
        resumed: 0,
        completed: 0,
        retried: 0,
        interrupted: 0,
      });
    });

    test('parameters are typed by their kind: ones it cannot read are refused, never run', async () => {
      let runs = 0;
      const sized = t.plane.tasks.register({
        name: 'test.sized',
        params: Type.Object({ bytes: Type.Number() }),
        run: async ({ task }) => {
          runs++;
          return { double: task.params.bytes * 2 };
        },
        recover: async () => 'retry',
      });
      const ok = await t.plane.tasks.submit({
        kind: sized,
        targetId: 'obj_sized',
        params: { bytes: 21 },
        owner: alice,
      });
      assert.deepEqual((await t.plane.tasks.waitFor(ok.id)).result, { double: 42 });
      // What a bug (or a hand-edited row) could store: the kind would read nonsense.
      const unreadable = await insert(
        row('test.sized', 'queued', { params: JSON.stringify({ bytes: 'many' }) }),
      );
      const leftover = await insert(
        row('test.sized', 'running', { params: JSON.stringify({ bytes: 'many' }) }),
      );
      assert.deepEqual(await t.plane.tasks.recover(), {
        resumed: 1,
        completed: 0,
        retried: 0,
        interrupted: 1,
      });
      const refused = await t.plane.tasks.waitFor(unreadable);
      assert.equal(refused.state, 'failed');
      assert.equal(refused.error?.code, 'ZEN_INTERNAL');
      assert.match(refused.error?.message ?? '', /test\.sized task cannot read: \/bytes/);
      assert.equal((await t.plane.tasks.waitFor(leftover)).error?.code, 'ZEN_TASK_INTERRUPTED');
      assert.deepEqual(await t.plane.tasks.unfinished(sized), []);
      assert.equal(runs, 1);
    });
  });
}
