import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';

test('a manual clock wakes sleepers in time order only when advanced', async () => {
  const clock = new ManualClock(0);
  const woke: string[] = [];
  void clock.sleep(200).then(() => woke.push(`b@${clock.now()}`));
  void clock.sleep(100).then(() => woke.push(`a@${clock.now()}`));
  await clock.advance(50);
  assert.deepEqual(woke, []);
  await clock.advance(200);
  assert.deepEqual(woke, ['a@100', 'b@200']);
  assert.equal(clock.now(), 250);
});

test('an aborted sleep rejects and is forgotten', async () => {
  const clock = new ManualClock(0);
  const controller = new AbortController();
  const sleeping = clock.sleep(100, controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(sleeping, /stop/);
  assert.equal(clock.pendingSleeps, 0);
});
