/** The machines' sensor history on SQLite and PostgreSQL: written, read as chart points and energy, pruned. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import {
  SensorHistory,
  summarizeSensors,
  type SensorSample,
} from '../../../src/services/machines/sensor-history.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const minute = 60_000;
const day = 86_400_000;
const t0 = Date.UTC(2026, 5, 1);

test('one reading of the sensors: the first power reading, the hottest temperature, the average fan', () => {
  const sample = summarizeSensors('m', t0, [
    { name: 'CPU1', kind: 'temperature', value: 40, unit: 'Cel' },
    { name: 'PSU total', kind: 'power', value: 312.5, unit: 'W' },
    { name: 'CPU2', kind: 'temperature', value: 57, unit: 'Cel' },
    { name: 'Fan1', kind: 'fan', value: 4000, unit: 'RPM' },
    { name: 'Sensor total', kind: 'power', value: 999, unit: 'W' },
    { name: 'Fan2', kind: 'fan', value: 5000, unit: 'RPM' },
  ]);
  assert.deepEqual(sample, {
    machineId: 'm',
    at: t0,
    watts: 312.5,
    temperatureC: 57,
    fanRpm: 4500,
  });
  assert.deepEqual(summarizeSensors('m', t0, []), {
    machineId: 'm',
    at: t0,
    watts: null,
    temperatureC: null,
    fanRpm: null,
  });
});

for (const kind of storeKinds) {
  describe(`sensor history on ${kind}`, () => {
    const clock = new ManualClock(t0 + 40 * day);
    let t: TestPlane;
    let history: SensorHistory;
    before(async () => {
      // The plane's own sampler prunes with a retention long enough to leave this test's samples.
      t = await startTestPlane({ store: kind, clock, machines: { sensorRetentionMs: 1000 * day } });
      history = new SensorHistory(t.plane.store, clock, {
        sensorSampleEveryMs: minute,
        sensorRetentionMs: 35 * day,
        sensorConcurrency: 8,
      });
      // Two hours of one machine, a sample a minute: 100 W the first hour, 300.5 W the second,
      // a 10-minute gap in the second; one sample without a power reading; another machine.
      const samples: SensorSample[] = [];
      for (let i = 0; i <= 120; i++) {
        if (i > 70 && i < 80) continue;
        samples.push({
          machineId: 'm1',
          at: t0 + 39 * day + i * minute,
          watts: i < 60 ? 100 : 300.5,
          temperatureC: 40 + (i % 7),
          fanRpm: 4000 + (i % 2) * 1000,
        });
      }
      samples.push({
        machineId: 'm2',
        at: t0 + 39 * day,
        watts: null,
        temperatureC: 30,
        fanRpm: null,
      });
      // Older than the retention.
      samples.push({ machineId: 'm1', at: t0, watts: 50, temperatureC: 20, fanRpm: 100 });
      await history.record(samples);
      // Written twice (a retried batch): kept once.
      await history.record(samples.slice(0, 3));
    });
    after(async () => t?.close());

    test('chart points: average watts, hottest temperature, average fan per step; null where nothing was read', async () => {
      const from = t0 + 39 * day;
      const view = await history.history('m1', {
        from,
        to: from + 2 * 3_600_000,
        stepSeconds: 600,
      });
      assert.equal(view.points.length, 12);
      assert.equal(view.points[0]!.watts, 100);
      assert.equal(view.points[0]!.temperatureC, 46);
      assert.equal(view.points[0]!.fanRpm, 4500);
      assert.equal(view.points[7]!.watts, 300.5);
      const empty = await history.history('m1', {
        from: from - 600_000,
        to: from,
        stepSeconds: 60,
      });
      assert.ok(empty.points.every((p) => p.watts === null && p.temperatureC === null));
      await assert.rejects(
        history.history('m1', { from, to: from + 365 * day, stepSeconds: 1 }),
        /at most 5000/,
      );
    });

    test('energy: trapezoids over the samples, the gap left out', async () => {
      const from = t0 + 39 * day;
      const energy = await history.energy('m1', from, from + 2 * 3_600_000);
      // 59 min at 100 W, the minute from 100 to 300.5 W, 10 min at 300.5 W, the gap (11 min)
      // not counted, 40 min at 300.5 W.
      const wattMin = 59 * 100 + (100 + 300.5) / 2 + 10 * 300.5 + 40 * 300.5;
      assert.equal(energy.coveredMs, 110 * minute);
      assert.ok(Math.abs(energy.kWh - (wattMin * minute) / 3_600_000_000) < 1e-12);
      assert.ok(Math.abs(energy.averageWatts! - wattMin / 110) < 1e-9);
      const none = await history.energy('m2', from, from + 3_600_000);
      assert.deepEqual(none, { kWh: 0, coveredMs: 0, averageWatts: null });
    });

    test('samples older than the retention are pruned', async () => {
      assert.equal((await history.samples('m1', t0, t0 + 1)).length, 1);
      assert.equal(await history.prune(), 1);
      assert.equal((await history.samples('m1', t0, t0 + 1)).length, 0);
      assert.equal((await history.samples('m1', t0 + 39 * day, t0 + 40 * day)).length, 112);
    });
  });
}
