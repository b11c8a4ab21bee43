import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HostWatch } from '../../../src/services/ha/host-watch.js';

/** A host watched from t=0 with a 3 s detection time; readings each second unless said. */
function watched() {
  return { watch: new HostWatch(0), detection: 3000 };
}

describe('the failure detector (channel and storage heartbeat)', () => {
  test('a host whose channel answers is healthy; silent for less than the detection time, suspect', () => {
    const { watch, detection } = watched();
    assert.deepEqual(
      watch.observe(10_000, { channelSilentMs: 200, storageCounter: null }, detection),
      { state: 'healthy' },
    );
    assert.deepEqual(
      watch.observe(12_800, { channelSilentMs: 2_800, storageCounter: null }, detection),
      { state: 'suspect', since: 10_000 },
    );
  });

  test('channel and storage both silent past the detection time: failed, since the last sign of life', () => {
    const { watch, detection } = watched();
    for (let t = 1000; t <= 10_000; t += 1000)
      watch.observe(
        t,
        { channelSilentMs: 100, storageCounter: t / 1000, storageReadAt: t },
        detection,
      );
    // The channel goes at 10 s; the counter stops at 10.
    let verdict;
    for (let t = 11_000; t <= 14_000; t += 1000)
      verdict = watch.observe(
        t,
        { channelSilentMs: null, storageCounter: 10, storageReadAt: t },
        detection,
      );
    assert.deepEqual(verdict, { state: 'failed', since: 10_000 });
    assert.equal(watch.counterSeenAt, 10_000, 'the lease as last seen');
  });

  test('channel silent but the storage counter still advancing: isolated, never failed', () => {
    const { watch, detection } = watched();
    watch.observe(
      1000,
      { channelSilentMs: 100, storageCounter: 1, storageReadAt: 1000 },
      detection,
    );
    for (let t = 2000; t <= 20_000; t += 1000) {
      const verdict = watch.observe(
        t,
        { channelSilentMs: null, storageCounter: t / 1000, storageReadAt: t },
        detection,
      );
      assert.notEqual(verdict.state, 'failed', `at ${t}`);
      if (t >= 5000) assert.deepEqual(verdict, { state: 'isolated', since: 900 });
    }
  });

  test('a late heartbeat reading decides nothing: the host stays suspect until a fresh one', () => {
    const { watch, detection } = watched();
    watch.observe(
      1000,
      { channelSilentMs: 100, storageCounter: 1, storageReadAt: 1000 },
      detection,
    );
    // No reading since 1 s (the reader is slow): not failed at 6 s.
    const verdict = watch.observe(
      6000,
      { channelSilentMs: null, storageCounter: 1, storageReadAt: 1000 },
      detection,
    );
    assert.equal(verdict.state, 'suspect');
  });

  test('after a start, every host counts as heard at the start (the grace period)', () => {
    const watch = new HostWatch(50_000);
    assert.equal(
      watch.observe(51_000, { channelSilentMs: null, storageCounter: null }, 3000).state,
      'suspect',
    );
    assert.equal(
      watch.observe(53_500, { channelSilentMs: null, storageCounter: null }, 3000).state,
      'failed',
    );
  });
});
