/** Which backups a retention keeps, on dates chosen to cross hours, days, ISO weeks and years. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { applyRetention } from '../../../src/services/backup/retention.js';

const at = (iso: string) => ({ id: iso, takenAt: Date.parse(iso) });
const ids = (list: Array<{ id: string }>) => list.map((b) => b.id);

// Nightly at 01:30 UTC from Mon 2026-11-23 to Sat 2026-12-05, two on the 5th, one an hour later.
const nightly = [
  ...Array.from({ length: 13 }, (_, i) =>
    at(new Date(Date.UTC(2026, 10, 23 + i, 1, 30)).toISOString()),
  ),
  at('2026-12-05T02:30:00.000Z'),
  at('2026-12-05T02:45:00.000Z'),
];

test('keep-last keeps the newest N; no rule keeps everything', () => {
  const { keep, prune } = applyRetention(nightly, { last: 2 });
  assert.deepEqual(ids(keep), ['2026-12-05T02:45:00.000Z', '2026-12-05T02:30:00.000Z']);
  assert.equal(prune.length, nightly.length - 2);
  assert.equal(applyRetention(nightly, {}).prune.length, 0);
});

test('daily keeps the newest backup of each of the newest N days', () => {
  const { keep } = applyRetention(nightly, { daily: 3 });
  assert.deepEqual(ids(keep), [
    '2026-12-05T02:45:00.000Z',
    '2026-12-04T01:30:00.000Z',
    '2026-12-03T01:30:00.000Z',
  ]);
});

test('rules after keep-last count only days not stood for already', () => {
  const { keep } = applyRetention(nightly, { last: 2, daily: 2 });
  // The two newest are both of the 5th: daily adds the 4th and the 3rd.
  assert.deepEqual(ids(keep), [
    '2026-12-05T02:45:00.000Z',
    '2026-12-05T02:30:00.000Z',
    '2026-12-04T01:30:00.000Z',
    '2026-12-03T01:30:00.000Z',
  ]);
});

test('weekly counts ISO weeks (Monday to Sunday); hourly counts hours', () => {
  const weekly = applyRetention(nightly, { weekly: 3 });
  // Weeks of 30 Nov–6 Dec, 23–29 Nov: two weeks hold backups.
  assert.deepEqual(ids(weekly.keep), ['2026-12-05T02:45:00.000Z', '2026-11-29T01:30:00.000Z']);
  const hourly = applyRetention(nightly, { hourly: 2 });
  assert.deepEqual(ids(hourly.keep), ['2026-12-05T02:45:00.000Z', '2026-12-05T01:30:00.000Z']);
});

test('days are local days in the time zone given', () => {
  // 23:30 UTC on the 4th is already the 5th in Tokyo: one day there, two in UTC.
  const late = [at('2026-12-04T23:30:00.000Z'), at('2026-12-05T02:00:00.000Z')];
  assert.equal(applyRetention(late, { daily: 5 }).keep.length, 2);
  assert.deepEqual(ids(applyRetention(late, { daily: 5, timeZone: 'Asia/Tokyo' }).keep), [
    '2026-12-05T02:00:00.000Z',
  ]);
});

test('monthly and yearly across a new year', () => {
  const years = [
    at('2025-12-31T12:00:00.000Z'),
    at('2026-01-01T12:00:00.000Z'),
    at('2026-06-01T12:00:00.000Z'),
  ];
  assert.deepEqual(ids(applyRetention(years, { yearly: 5 }).keep), [
    '2026-06-01T12:00:00.000Z',
    '2025-12-31T12:00:00.000Z',
  ]);
  assert.deepEqual(ids(applyRetention(years, { monthly: 2 }).keep), [
    '2026-06-01T12:00:00.000Z',
    '2026-01-01T12:00:00.000Z',
  ]);
});

test('bad retentions are coded refusals', () => {
  for (const bad of [{ last: -1 }, { daily: 1.5 }, { daily: 1, timeZone: 'Mars/Olympus' }])
    assert.throws(
      () => applyRetention(nightly, bad),
      (error: unknown) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
      JSON.stringify(bad),
    );
});
