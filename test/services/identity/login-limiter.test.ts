import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { LoginLimiter } from '../../../src/services/identity/login-limiter.js';

const limitedFor = (work: () => unknown): number | null => {
  try {
    work();
    return null;
  } catch (error) {
    assert.ok(isZenithError(error) && error.code === 'ZEN_RATE_LIMITED', String(error));
    return error.details.retryAfterSeconds as number;
  }
};

test('attempts are reserved before they are judged: no more in flight than failures left', () => {
  const limiter = new LoginLimiter(new ManualClock());
  const keys = ['user:ann', 'addr:10.0.0.1'];
  const first = limiter.begin(keys);
  const second = limiter.begin(keys);
  assert.equal(
    limitedFor(() => limiter.begin(keys)),
    1,
    'two at once per user name',
  );
  first.fail();
  second.fail();
  const spent = [limiter.begin(keys), limiter.begin(keys)];
  for (const attempt of spent) attempt.fail();
  const last = limiter.begin(keys);
  // One failure left: a second attempt may not start while the last one is being verified.
  assert.equal(
    limitedFor(() => limiter.begin(['user:bob', 'addr:10.0.0.1'])),
    1,
  );
  last.fail();
  assert.equal(
    limitedFor(() => limiter.begin(keys)),
    30,
    'five failures lock for 30 s',
  );
  // Another address may try another name.
  limiter.begin(['user:bob', 'addr:10.0.0.2']).release();
});

test('after a lock, one attempt at a time; its failure locks twice as long, a success clears the name', async () => {
  const clock = new ManualClock();
  const limiter = new LoginLimiter(clock);
  const keys = ['user:ann', 'addr:10.0.0.1'];
  for (let i = 0; i < 5; i++) limiter.begin(keys).fail();
  await clock.advance(30_000);
  const retry = limiter.begin(keys);
  assert.equal(
    limitedFor(() => limiter.begin(keys)),
    1,
  );
  retry.fail();
  assert.equal(
    limitedFor(() => limiter.begin(keys)),
    60,
  );
  await clock.advance(60_000);
  limiter.begin(['user:ann', 'addr:10.0.0.9']).succeed(['user:ann']);
  // The name is clear again; the address keeps its failures.
  limiter.begin(['user:ann', 'addr:10.0.0.9']).release();
  assert.equal(
    limitedFor(() => limiter.begin(['user:ann', 'addr:10.0.0.1'])),
    null,
  );
});

test('a released attempt (neither failed nor succeeded) spends nothing, and settles once', () => {
  const limiter = new LoginLimiter(new ManualClock());
  const keys = ['user:ann', 'addr:10.0.0.1'];
  for (let i = 0; i < 20; i++) {
    const attempt = limiter.begin(keys);
    attempt.release();
    attempt.fail();
  }
  limiter.begin(keys).release();
});
