/**
 * Closing a control plane leaves nothing waiting on its clock: a timer left behind (the task
 * service's drain timeout was one) keeps a process — a test file, a program embedding the control
 * plane — alive for its whole length after close() returned.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { startTestPlane, storeKinds } from '../../src/testing/control-plane.js';

for (const kind of storeKinds) {
  test(`on ${kind}, close() leaves no sleep pending on the clock`, async () => {
    const clock = new ManualClock();
    const plane = await startTestPlane({ store: kind, clock });
    await plane.close();
    assert.equal(clock.pendingSleeps, 0);
  });
}
