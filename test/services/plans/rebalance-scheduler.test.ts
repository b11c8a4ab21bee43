import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { RebalanceScheduleSettings } from '../../../src/services/policy/policy-document.js';
import { RebalanceScheduler } from '../../../src/services/plans/rebalance-scheduler.js';

test('the rebalancer runs every scheduled interval, follows a changed schedule, and idles without one', async () => {
  const clock = new ManualClock();
  let settings: RebalanceScheduleSettings | undefined = { everyMinutes: 10, mode: 'balance' };
  const runs: number[] = [];
  const scheduler = new RebalanceScheduler(
    clock,
    () => settings,
    async () => {
      runs.push(clock.now());
      if (runs.length === 1) throw new Error('a failed round does not stop the schedule');
    },
    silentLogger,
  );
  const start = clock.now();
  scheduler.start();
  await clock.advance(9 * 60_000);
  assert.equal(runs.length, 0);
  await clock.advance(60_000);
  await clock.advance(10 * 60_000);
  assert.deepEqual(runs, [start + 10 * 60_000, start + 20 * 60_000]);
  settings = { everyMinutes: 1 };
  await clock.advance(10 * 60_000); // the round already waiting ends at 30 min; then every minute
  assert.ok(runs.length >= 3);
  settings = undefined;
  const before = runs.length;
  await clock.advance(60 * 60_000);
  assert.ok(runs.length <= before + 1, 'no schedule, no rounds');
  await scheduler.stop();
});
