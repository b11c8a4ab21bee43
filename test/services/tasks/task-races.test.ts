/**
 * Races between the task runner, cancel and recovery, on both stores: whoever loses a race on a
 * task's state leaves it as the winner made it (the state machine in task-transitions.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from 'typebox';
import { isZenithError } from '../../../src/core/errors.js';
import type { Actor } from '../../../src/services/audit/audit-service.js';
import type { Task } from '../../../src/services/tasks/task-service.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const alice: Actor = { id: 'usr_alice', kind: 'user', name: 'alice' };

/** A promise and the function that settles it. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const noParams = Type.Object({});

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

for (const kind of storeKinds) {
  describe(`task races on ${kind}`, () => {
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind });
    });
    after(async () => t.close());

    const finalEvents = async (taskId: string) =>
      (
        await t.plane.store.db
          .selectFrom('events')
          .select('type')
          .where('object_id', '=', taskId)
          .orderBy('seq')
          .execute()
      ).map((row) => row.type);

    test('a cancel that lands while the runner picks the task up wins: the task never succeeds', async () => {
      const runs: string[] = [];
      // Honours its signal at its first step, as drivers do.
      const quick = t.plane.tasks.register({
        name: 'test.quick',
        params: noParams,
        run: async ({ task, signal }) => {
          runs.push(task.id);
          await turn();
          if (signal.aborted) throw signal.reason as Error;
          return { ran: true };
        },
        recover: async () => 'retry',
      });
      let gate = deferred();
      const blocker = t.plane.tasks.register({
        name: 'test.blocker',
        params: noParams,
        run: () => gate.promise,
        recover: async () => 'retry',
      });
      // Cancel after every delay from "at once" to "long after it started", in microtasks and in
      // turns of the event loop, for a task that starts at once and for one that waits behind
      // another task on its target: some land between the runner's read of `queued` and its start.
      const delays = [
        ...Array.from({ length: 24 }, (_, n) => ({ microtasks: n, turns: 0 })),
        ...Array.from({ length: 12 }, (_, n) => ({ microtasks: 0, turns: n })),
      ];
      const trials = [false, true].flatMap((behind) =>
        delays.map((delay) => ({ behind, ...delay })),
      );
      const outcomes: Array<{ task: Task; answer: Task | undefined; trial: string }> = [];
      for (const [index, trial] of trials.entries()) {
        const targetId = `obj_race${index}`;
        gate = deferred();
        if (trial.behind)
          await t.plane.tasks.submit({ kind: blocker, targetId, params: {}, owner: alice });
        const task = await t.plane.tasks.submit({
          kind: quick,
          targetId,
          params: {},
          owner: alice,
        });
        // The task ahead ends now: the runner takes this one up a moment later.
        gate.resolve();
        for (let n = 0; n < trial.microtasks; n++) await Promise.resolve();
        for (let n = 0; n < trial.turns; n++) await turn();
        // The answer of a cancel that stopped it; undefined when it had ended already (a code says so).
        const answer = await t.plane.tasks.cancel(task.id, alice).catch((error: unknown) => {
          if (isZenithError(error) && error.code === 'ZEN_INVALID_STATE') return undefined;
          throw error;
        });
        outcomes.push({
          task: await t.plane.tasks.waitFor(task.id),
          answer,
          trial: JSON.stringify(trial),
        });
      }
      for (const { task, answer, trial } of outcomes) {
        const events = await finalEvents(task.id);
        const outcomes = events.filter((type) =>
          ['task.succeeded', 'task.failed', 'task.cancelled'].includes(type),
        );
        // One outcome, never overwritten (before: cancelled, then succeeded all the same).
        assert.deepEqual(outcomes, [`task.${task.state}`], `after ${trial}: ${events.join(', ')}`);
        if (!answer) assert.equal(task.state, 'succeeded', 'only an ended task refuses a cancel');
        // Cancelled before it started: its work never began.
        if (answer?.state === 'cancelled') assert.ok(!runs.includes(task.id), `ran after ${trial}`);
        // Stopped while running: cancelled, unless its work had completed first.
        if (answer && task.state !== 'cancelled')
          assert.equal(task.state, 'succeeded', `after ${trial}`);
      }
    });

    test('recovery leaves alone a task this process is running, whatever its kind would say', async () => {
      for (const verdict of ['done', 'retry', 'interrupted'] as const) {
        const name = `test.live.${verdict}`;
        const started = deferred();
        const release = deferred();
        let runs = 0;
        const live = t.plane.tasks.register({
          name,
          params: noParams,
          run: async () => {
            runs++;
            started.resolve();
            await release.promise;
            return { ran: runs };
          },
          recover: async () => verdict,
        });
        const task = await t.plane.tasks.submit({
          kind: live,
          targetId: `obj_live_${verdict}`,
          params: {},
          owner: alice,
        });
        await started.promise;
        const recovered = await t.plane.tasks.recover();
        assert.deepEqual(
          recovered,
          { resumed: 0, completed: 0, retried: 0, interrupted: 0 },
          `recovery took the running task for a leftover (its kind says ${verdict})`,
        );
        release.resolve();
        const ended = await t.plane.tasks.waitFor(task.id);
        assert.deepEqual(
          [ended.state, ended.attempt, ended.result, runs],
          ['succeeded', 1, { ran: 1 }, 1],
        );
        assert.deepEqual(await finalEvents(task.id), [
          'task.queued',
          'task.running',
          'task.succeeded',
        ]);
      }
    });

    test('a cancel that lands while recovery checks a task left running is kept: the task never runs again', async () => {
      const checking = deferred();
      const verdict = deferred<'retry'>();
      let runs = 0;
      t.plane.tasks.register({
        name: 'test.leftover',
        params: noParams,
        run: async () => {
          runs++;
          return {};
        },
        recover: async () => {
          checking.resolve();
          return verdict.promise;
        },
      });
      // What a process killed while running the task leaves behind.
      const id = 'task_01LEFTOVER0000000000000000';
      await t.plane.store.db
        .insertInto('tasks')
        .values({
          id,
          kind: 'test.leftover',
          target_id: 'obj_leftover',
          owner_id: 'system',
          state: 'running',
          progress: 40,
          progress_message: null,
          progress_details: null,
          params: '{}',
          result: null,
          error_code: null,
          error_message: null,
          attempt: 1,
          created_at: t.plane.clock.now(),
          started_at: t.plane.clock.now(),
          ended_at: null,
        })
        .execute();
      const recovering = t.plane.tasks.recover();
      await checking.promise;
      const cancelled = await t.plane.tasks.cancel(id, alice);
      assert.equal(cancelled.state, 'cancelled');
      verdict.resolve('retry');
      const recovered = await recovering;
      assert.equal(recovered.retried, 0, 'recovery did not run a cancelled task again');
      // Anything recovery scheduled has had its turn by the time the lane drains.
      for (let n = 0; n < 20; n++) await turn();
      const task = await t.plane.tasks.get(id);
      assert.deepEqual([task.state, task.attempt, runs], ['cancelled', 1, 0]);
      assert.deepEqual(await finalEvents(id), ['task.cancelled']);
    });
  });
}
