/** Energy from sampled power draw: trapezoids, gaps left out, periods cut between samples. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  energyBetween,
  energyOf,
  wattMsPerKWh,
  type WattSample,
} from '../../../src/services/accounting/energy.js';

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const t0 = Date.UTC(2026, 5, 1);
const gap = 3 * minute;

/** A sample every `every` ms from `from` (inclusive) to `to` (inclusive) of `watts(t)`. */
function samples(from: number, to: number, every: number, watts: (t: number) => number) {
  const list: WattSample[] = [];
  for (let at = from; at <= to; at += every) list.push({ at, watts: watts(at) });
  return list;
}

test('a constant draw for an hour is its watts in Wh', () => {
  const energy = energyOf(
    samples(t0, t0 + hour, minute, () => 200),
    t0,
    t0 + hour,
    gap,
  );
  assert.ok(Math.abs(energy.kWh - 0.2) < 1e-12, String(energy.kWh));
  assert.equal(energy.coveredMs, hour);
  assert.equal(energy.averageWatts, 200);
});

test('a draw that rises in a straight line is integrated exactly (trapezoids)', () => {
  // 100 W at t0 to 300 W an hour later, sampled every 10 minutes: 200 Wh.
  const line = (t: number) => 100 + (200 * (t - t0)) / hour;
  const energy = energyOf(samples(t0, t0 + hour, 10 * minute, line), t0, t0 + hour, 30 * minute);
  assert.ok(Math.abs(energy.kWh - 0.2) < 1e-12, String(energy.kWh));
  // A step: 100 W then 300 W from the second sample on; the step is a ramp over one period.
  const step = [
    { at: t0, watts: 100 },
    { at: t0 + minute, watts: 300 },
    { at: t0 + 2 * minute, watts: 300 },
  ];
  const stepped = energyOf(step, t0, t0 + 2 * minute, gap);
  assert.ok(Math.abs(stepped.kWh * wattMsPerKWh - (200 * minute + 300 * minute)) < 1e-3);
});

test('a gap longer than three sampling periods is left out of the energy and the time covered', () => {
  const list = [
    ...samples(t0, t0 + 10 * minute, minute, () => 600),
    // 20 minutes without a sample (the BMC did not answer), then 10 more minutes.
    ...samples(t0 + 30 * minute, t0 + 40 * minute, minute, () => 600),
  ];
  const energy = energyOf(list, t0, t0 + 40 * minute, gap);
  assert.equal(energy.coveredMs, 20 * minute);
  assert.ok(Math.abs(energy.kWh - (600 * 20) / 60 / 1000) < 1e-12, String(energy.kWh));
  assert.equal(energy.averageWatts, 600);
  // Exactly three periods apart is still a line, not a gap.
  const three = energyOf(
    [
      { at: t0, watts: 100 },
      { at: t0 + gap, watts: 100 },
    ],
    t0,
    t0 + gap,
    gap,
  );
  assert.equal(three.coveredMs, gap);
  // A reading without power breaks the line like a gap.
  const broken = energyOf(
    [
      { at: t0, watts: 100 },
      { at: t0 + minute, watts: null },
      { at: t0 + 2 * minute, watts: 100 },
    ],
    t0,
    t0 + 2 * minute,
    gap,
  );
  assert.equal(broken.coveredMs, 0);
  assert.equal(broken.kWh, 0);
  assert.equal(broken.averageWatts, null);
});

test('a period starting and ending between samples takes the part of each trapezoid inside it', () => {
  // 0 W at t0 rising to 600 W at t0 + 10 min: the draw at t0 + 5 min is 300 W.
  const list = [
    { at: t0, watts: 0 },
    { at: t0 + 10 * minute, watts: 600 },
    { at: t0 + 20 * minute, watts: 600 },
  ];
  const energy = energyOf(list, t0 + 5 * minute, t0 + 15 * minute, gap * 10);
  // 5 min from 300 to 600 W (avg 450) + 5 min at 600 W.
  const expected = (450 * 5 * minute + 600 * 5 * minute) / wattMsPerKWh;
  assert.ok(Math.abs(energy.kWh - expected) < 1e-12, `${energy.kWh} vs ${expected}`);
  assert.equal(energy.coveredMs, 10 * minute);
  // Cut into spans, the parts add up to the whole.
  const bounds = [t0 + 5 * minute, t0 + 7 * minute, t0 + 10 * minute, t0 + 15 * minute];
  const spans = energyBetween(list, bounds, gap * 10);
  const sum = spans.reduce((a, s) => a + s.wattMs, 0);
  assert.ok(Math.abs(sum / wattMsPerKWh - expected) < 1e-12);
  assert.deepEqual(
    spans.map((s) => s.coveredMs),
    [2 * minute, 3 * minute, 5 * minute],
  );
});

test('no samples, or samples all outside the period: nothing covered, no average', () => {
  assert.deepEqual(energyOf([], t0, t0 + hour, gap), {
    kWh: 0,
    coveredMs: 0,
    averageWatts: null,
  });
  const before = samples(t0 - hour, t0 - 30 * minute, minute, () => 100);
  assert.equal(energyOf(before, t0, t0 + hour, gap).coveredMs, 0);
  // One lone sample covers no time.
  assert.equal(energyOf([{ at: t0 + minute, watts: 100 }], t0, t0 + hour, gap).coveredMs, 0);
});
