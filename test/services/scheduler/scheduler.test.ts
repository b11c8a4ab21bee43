/**
 * The scheduler on a real store (SQLite) and an injected clock: a slot fires once, even with two
 * schedulers racing for it; slots missed while nothing ran fire once; patterns are read in their
 * time zone; bad patterns and zones are refused; a handler that fails passes its slot.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { Scheduler, nextSlots, type Firing } from '../../../src/services/scheduler/scheduler.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { captureLogs } from '../../../src/testing/log-capture.js';
import { until } from '../../../src/testing/wait.js';

describe('the scheduler', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-scheduler-'));
  let store: Store;
  before(async () => {
    store = await openStore({ dataDir });
  });
  after(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A scheduler whose handler records the slots it fired (after its transaction committed). */
  // Each test's schedules have an owner kind of their own: the store is shared.
  const make = (clock: ManualClock, kind: string, fail = false) => {
    const logs = captureLogs();
    const scheduler = new Scheduler({ store, clock, logger: logs.logger });
    const fired: number[] = [];
    scheduler.register(kind, {
      fire: async (firing: Firing) => {
        if (fail) throw new Error('the owner is broken');
        await store.transaction((tx) => firing.take(tx, `task-${firing.slot}`));
        fired.push(firing.slot);
      },
    });
    return { scheduler, fired, logs };
  };

  test('a daily slot in a time zone fires once at its time; slots missed meanwhile fire once, then it goes on from now', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    const { scheduler, fired } = make(clock, 'daily');
    const set = await store.transaction((tx) =>
      scheduler.set(tx, 'daily', 'daily', {
        cron: '0 2 * * *',
        timeZone: 'Europe/Paris',
        enabled: true,
      }),
    );
    // 02:00 in Paris is 01:00 UTC in winter.
    assert.equal(set.nextRunAt, Date.parse('2026-01-01T01:00:00Z'));
    assert.equal(await scheduler.runDue(), 0, 'not due yet');
    await clock.advance(60 * 60_000);
    assert.equal(await scheduler.runDue(), 1);
    assert.equal(await scheduler.runDue(), 0, 'a slot fires once');
    assert.deepEqual(fired, [Date.parse('2026-01-01T01:00:00Z')]);
    const after = (await scheduler.get('daily'))!;
    assert.equal(after.nextRunAt, Date.parse('2026-01-02T01:00:00Z'));
    assert.equal(after.lastTaskId, `task-${Date.parse('2026-01-01T01:00:00Z')}`);
    // Three days with nothing running: one run when it is back, then the next 02:00.
    await clock.advance(3 * 86_400_000 + 30 * 60_000);
    assert.equal(await scheduler.runDue(), 1);
    assert.equal(await scheduler.runDue(), 0);
    assert.equal((await scheduler.get('daily'))!.nextRunAt, Date.parse('2026-01-05T01:00:00Z'));
    // In summer, 02:00 in Paris is 00:00 UTC.
    assert.deepEqual(
      nextSlots(
        { cron: '0 2 * * *', timeZone: 'Europe/Paris' },
        Date.parse('2026-07-01T12:00:00Z'),
        2,
      ),
      [Date.parse('2026-07-02T00:00:00Z'), Date.parse('2026-07-03T00:00:00Z')],
    );
  });

  test('two schedulers on one store racing for a slot: it fires once', async () => {
    const clock = new ManualClock(Date.parse('2026-02-01T00:00:00Z'));
    const a = make(clock, 'race');
    const b = make(clock, 'race');
    await store.transaction((tx) =>
      a.scheduler.set(tx, 'race', 'race', {
        cron: '*/10 * * * * *',
        timeZone: 'UTC',
        enabled: true,
      }),
    );
    for (let round = 0; round < 5; round++) {
      await clock.advance(10_000);
      await Promise.all([a.scheduler.runDue(), b.scheduler.runDue(), a.scheduler.runDue()]);
    }
    const all = [...a.fired, ...b.fired].sort();
    assert.equal(all.length, 5, `fired ${JSON.stringify(all)}`);
    assert.equal(new Set(all).size, 5, 'no slot twice');
  });

  test('a disabled schedule never fires; enabled again, it counts from now', async () => {
    const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
    const { scheduler, fired } = make(clock, 'hourly');
    const spec = { cron: '0 * * * *', timeZone: 'UTC' };
    const off = await store.transaction((tx) =>
      scheduler.set(tx, 'hourly', 'hourly', { ...spec, enabled: false }),
    );
    assert.equal(off.nextRunAt, null);
    await clock.advance(5 * 3_600_000);
    assert.equal(await scheduler.runDue(), 0);
    const on = await store.transaction((tx) =>
      scheduler.set(tx, 'hourly', 'hourly', { ...spec, enabled: true }),
    );
    assert.equal(on.nextRunAt, Date.parse('2026-03-01T06:00:00Z'));
    assert.deepEqual(fired, []);
    await store.transaction((tx) => scheduler.remove(tx, 'hourly'));
    assert.equal(await scheduler.get('hourly'), null);
  });

  test('a pattern or a time zone that cannot give a slot is refused, and names its field', async () => {
    const clock = new ManualClock();
    const { scheduler } = make(clock, 'bad');
    for (const [spec, field] of [
      [{ cron: '0 99 * * *', timeZone: 'UTC' }, 'schedule'],
      [{ cron: 'every night', timeZone: 'UTC' }, 'schedule'],
      [{ cron: '0 2 * * *', timeZone: 'Mars/Olympus' }, 'timeZone'],
    ] as const)
      await assert.rejects(
        store.transaction((tx) => scheduler.set(tx, 'bad', 'bad', { ...spec, enabled: true })),
        (error) =>
          isZenithError(error) && error.code === 'ZEN_BAD_REQUEST' && error.details.field === field,
      );
    assert.equal(await scheduler.get('bad'), null, 'nothing written');
  });

  test('a slot its owner cannot start is passed and logged, not tried again every poll', async () => {
    const clock = new ManualClock(Date.parse('2026-04-01T00:00:00Z'));
    const { scheduler, logs } = make(clock, 'broken', true);
    await store.transaction((tx) =>
      scheduler.set(tx, 'broken', 'broken', { cron: '0 * * * *', timeZone: 'UTC', enabled: true }),
    );
    await clock.advance(3_600_000);
    assert.equal(await scheduler.runDue(), 0);
    assert.equal(await scheduler.runDue(), 0);
    assert.equal(
      logs.lines().filter((line) => line.msg === 'a scheduled run could not be started').length,
      1,
    );
    const state = (await scheduler.get('broken'))!;
    assert.equal(state.nextRunAt, Date.parse('2026-04-01T02:00:00Z'));
    assert.equal(state.lastTaskId, null);
  });

  test('the running loop sleeps until the next slot, wakes for a schedule set meanwhile, and fires each slot once', async () => {
    const clock = new ManualClock(Date.parse('2026-05-01T00:00:00Z'));
    const { scheduler, fired } = make(clock, 'looped');
    scheduler.start();
    try {
      const parked = () =>
        until('the loop asleep', async () => (clock.pendingSleeps > 0 ? true : undefined));
      await parked();
      // Set while the loop sleeps (a minute at most with nothing scheduled): it looks again.
      await store.transaction((tx) =>
        scheduler.set(tx, 'looped', 'looped', {
          cron: '*/20 * * * * *',
          timeZone: 'UTC',
          enabled: true,
        }),
      );
      await clock.advance(1000);
      await parked();
      // It sleeps to the slot 20 s on and fires it there, once.
      await clock.advance(19_000);
      await until('the first slot fired', async () => (fired.length === 1 ? true : undefined));
      assert.deepEqual(fired, [Date.parse('2026-05-01T00:00:20Z')]);
      await parked();
      await clock.advance(20_000);
      await until('the second slot fired', async () => (fired.length === 2 ? true : undefined));
      assert.deepEqual(fired, [
        Date.parse('2026-05-01T00:00:20Z'),
        Date.parse('2026-05-01T00:00:40Z'),
      ]);
    } finally {
      await scheduler.stop();
      await store.transaction((tx) => scheduler.remove(tx, 'looped'));
    }
  });
});
