import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { ZenithError } from '../../../src/core/errors.js';
import {
  confirmPowerOff,
  type FenceTarget,
} from '../../../src/protocols/fencing/confirm-power-off.js';

/** A BMC whose answers the test scripts: a list of power states read in turn, and off-request outcomes. */
function scriptedBmc(reads: ('on' | 'off' | 'fail')[], offFailures = 0) {
  const calls: string[] = [];
  const target: FenceTarget = {
    powerOff: () => {
      calls.push('off');
      if (offFailures > 0) {
        offFailures -= 1;
        return Promise.reject(new ZenithError('IPMI_UNREACHABLE', 'no answer'));
      }
      return Promise.resolve();
    },
    readPower: () => {
      calls.push('read');
      const next = reads.length > 1 ? reads.shift()! : reads[0]!;
      return next === 'fail'
        ? Promise.reject(new ZenithError('REDFISH_TIMEOUT', 'slow'))
        : Promise.resolve(next);
    },
  };
  return { target, calls };
}

/** Moves the clock only while the fence sleeps between reads, one interval at a time. */
async function drive<T>(clock: ManualClock, work: Promise<T>, stepMs = 1000): Promise<T> {
  let done = false;
  const settled = work.finally(() => (done = true));
  settled.catch(() => undefined);
  while (!done) {
    await new Promise((resolve) => setImmediate(resolve));
    if (clock.pendingSleeps > 0) await clock.advance(stepMs);
  }
  return settled;
}

test('fencing returns once a read says off, after a single request', async () => {
  const clock = new ManualClock();
  const bmc = scriptedBmc(['on', 'on', 'off']);
  const result = await drive(clock, confirmPowerOff(bmc.target, { clock, pollIntervalMs: 1000 }));
  assert.deepEqual(bmc.calls, ['off', 'read', 'read', 'read']);
  assert.deepEqual(result, { elapsedMs: 2000, offRequests: 1, polls: 3 });
});

test('a power-off the BMC refused is asked again, and reads begin only once one was accepted', async () => {
  const clock = new ManualClock();
  const bmc = scriptedBmc(['off'], 2);
  const result = await drive(clock, confirmPowerOff(bmc.target, { clock }));
  assert.deepEqual(bmc.calls, ['off', 'off', 'off', 'read']);
  assert.equal(result.offRequests, 3);
});

test('a machine that stays on is asked to power off again, then fencing fails at the deadline', async () => {
  const clock = new ManualClock();
  const bmc = scriptedBmc(['on']);
  await assert.rejects(
    drive(
      clock,
      confirmPowerOff(bmc.target, { clock, deadlineMs: 10_000, repeatOffAfterPolls: 3 }),
    ),
    (error: ZenithError) => {
      assert.equal(error.code, 'BMC_FENCE_UNCONFIRMED');
      assert.equal(error.details.lastState, 'on');
      assert.equal(error.details.offAccepted, true);
      assert.ok((error.details.offRequests as number) >= 3, JSON.stringify(error.details));
      return true;
    },
  );
  assert.ok(clock.now() - new ManualClock().now() <= 10_000, 'it gave up by the deadline');
});

test('reads that fail never count as off: fencing fails with the last error', async () => {
  const clock = new ManualClock();
  const bmc = scriptedBmc(['fail']);
  await assert.rejects(
    drive(clock, confirmPowerOff(bmc.target, { clock, deadlineMs: 5000 })),
    (error: ZenithError) => {
      assert.equal(error.code, 'BMC_FENCE_UNCONFIRMED');
      assert.equal(error.details.lastState, 'unknown');
      assert.deepEqual(error.details.lastError, { code: 'REDFISH_TIMEOUT', message: 'slow' });
      return true;
    },
  );
});

test('a read that never answers does not hold the fence past its deadline', async () => {
  const clock = new ManualClock();
  const started = clock.now();
  const target: FenceTarget = {
    powerOff: () => Promise.resolve(),
    readPower: () => new Promise<never>(() => undefined),
  };
  await assert.rejects(
    drive(clock, confirmPowerOff(target, { clock, deadlineMs: 7000 })),
    (error: ZenithError) => {
      assert.equal(error.code, 'BMC_FENCE_UNCONFIRMED');
      assert.equal(error.details.unansweredAtDeadline, 'readPower');
      assert.equal(error.details.offAccepted, true);
      return true;
    },
  );
  assert.equal(clock.now() - started, 7000);
});
