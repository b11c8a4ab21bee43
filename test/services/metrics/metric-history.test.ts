import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import type { VmMetrics } from '../../../src/hypervisors/driver.js';
import { MetricHistory } from '../../../src/services/metrics/metric-history.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const MiB = 2 ** 20;
const t0 = Date.UTC(2026, 5, 1);

/** Counters of a VM that uses 10 % of a CPU, reads 4 KiB/s, writes 1 KiB/s and sends 2 KiB/s. */
function countersAt(at: number, since: number, withNet = true): VmMetrics {
  const s = (at - since) / second;
  return {
    sampledAt: at,
    cpuTimeMs: (at - since) / 10,
    memoryUsedBytes: 100 * MiB + (s % 2) * MiB,
    memoryConfiguredBytes: 128 * MiB,
    diskReadBytes: 4096 * s,
    diskWriteBytes: 1024 * s,
    diskReadOps: s,
    diskWriteOps: s,
    netRxBytes: withNet ? 512 * s : null,
    netTxBytes: withNet ? 2048 * s : null,
  };
}

for (const kind of storeKinds) {
  describe(`metrics history on ${kind}`, () => {
    const clock = new ManualClock(t0);
    let t: TestPlane;
    let history: MetricHistory;
    /** Samples VMs every 15 s from now for `ms`, flushing once a minute. */
    const run = async (
      ms: number,
      vms: Array<{ id: string; since: number; withNet?: boolean }>,
    ) => {
      const end = clock.now() + ms;
      while (clock.now() < end) {
        await clock.advance(15 * second);
        for (const vm of vms)
          history.record(vm.id, countersAt(clock.now(), vm.since, vm.withNet ?? true));
        if (clock.now() % minute === 0) await history.flush();
      }
      await history.flush();
    };

    before(async () => {
      // The history has a clock of its own: the plane's sampler must not wake (and prune) as it moves.
      t = await startTestPlane({ store: kind, clock: new ManualClock(t0) });
      // A history of its own, not the plane's sampler (whose VMs these are not).
      history = new MetricHistory(t.plane.store, clock, {
        sampleEveryMs: 15 * second,
        rawRetentionMs: 24 * hour,
        rollupRetentionMs: 35 * 24 * hour,
      });
    });
    after(async () => t.close());

    test('rates per step come from counter differences; a VM without network counters has null network rates', async () => {
      await run(10 * minute, [
        { id: 'vm_A', since: t0 },
        { id: 'vm_B', since: t0, withNet: false },
      ]);
      const a = await history.history('vm_A', { from: t0, to: t0 + 10 * minute, stepSeconds: 60 });
      assert.equal(a.points.length, 10);
      assert.deepEqual(
        a.points.map((p) => p.at),
        Array.from({ length: 10 }, (_, i) => t0 + i * minute),
      );
      // The first sample only starts the differences: the first step has three, the others four.
      for (const point of a.points) {
        assert.ok(Math.abs(point.cpuPercent! - 10) < 1e-9, `cpu at ${point.at}`);
        assert.ok(Math.abs(point.diskReadBytesPerSec! - 4096) < 1e-9);
        assert.ok(Math.abs(point.diskWriteBytesPerSec! - 1024) < 1e-9);
        assert.ok(Math.abs(point.netRxBytesPerSec! - 512) < 1e-9);
        assert.ok(Math.abs(point.netTxBytesPerSec! - 2048) < 1e-9);
        assert.ok(point.memoryUsedBytes! >= 100 * MiB && point.memoryUsedBytes! <= 101 * MiB);
      }
      const b = await history.history('vm_B', { from: t0, to: t0 + 10 * minute, stepSeconds: 300 });
      assert.equal(b.points.length, 2);
      for (const point of b.points) {
        assert.equal(point.netRxBytesPerSec, null);
        assert.equal(point.netTxBytesPerSec, null);
        assert.ok(Math.abs(point.cpuPercent! - 10) < 1e-9);
      }
      // Steps where nothing was measured are null.
      const later = await history.history('vm_A', {
        from: t0 + 9 * minute,
        to: t0 + 12 * minute,
        stepSeconds: 60,
      });
      assert.deepEqual(
        later.points.map((p) => p.cpuPercent === null),
        [false, true, true],
      );
    });

    test('a counter reset (the VM restarted) never gives a negative rate', async () => {
      const from = clock.now();
      // vm_A restarts: its counters begin again at zero.
      await run(5 * minute, [{ id: 'vm_A', since: from }]);
      const view = await history.history('vm_A', { from, to: clock.now(), stepSeconds: 15 });
      const rates = view.points.flatMap((p) => [
        p.cpuPercent,
        p.diskReadBytesPerSec,
        p.diskWriteBytesPerSec,
        p.netRxBytesPerSec,
        p.netTxBytesPerSec,
      ]);
      assert.ok(rates.some((r) => r !== null));
      for (const r of rates) assert.ok(r === null || r >= 0, `rate ${r}`);
      // The sample right after the restart counts from zero: 15 s of 10 % is 1.5 s, as before.
      assert.ok(Math.abs(view.points[0]!.cpuPercent! - 10) < 1e-9);
    });

    test('an unchanged heartbeat is not a new sample', () => {
      const same = countersAt(clock.now(), t0);
      assert.equal(history.record('vm_C', same), true);
      assert.equal(history.record('vm_C', same), false);
    });

    test('beyond the raw retention, 5-minute rollups answer with the same rates; pruning keeps each within its retention', async () => {
      const start = clock.now();
      await run(hour, [{ id: 'vm_D', since: start }]);
      const rawView = await history.history('vm_D', {
        from: start,
        to: start + hour,
        stepSeconds: 300,
      });
      await clock.advance(25 * hour);
      const pruned = await history.prune();
      assert.ok(pruned.samples >= 240, `pruned ${pruned.samples} raw samples`);
      assert.equal(pruned.rollups, 0);
      const left = await t.plane.store.db
        .selectFrom('vm_metric_samples')
        .select('vm_id')
        .where('vm_id', '=', 'vm_D')
        .execute();
      assert.equal(left.length, 0, 'raw samples older than 24 h are gone');
      const rolled = await history.history('vm_D', {
        from: start,
        to: start + hour,
        stepSeconds: 300,
      });
      assert.deepEqual(rolled.points, rawView.points);
      assert.equal(rolled.points.length, 12);
      assert.ok(rolled.points.every((p) => p.cpuPercent !== null));
      await clock.advance(35 * 24 * hour);
      const later = await history.prune();
      assert.ok(later.rollups >= 12);
      const gone = await history.history('vm_D', {
        from: start,
        to: start + hour,
        stepSeconds: 3600,
      });
      assert.ok(gone.points.length > 0);
      assert.ok(gone.points.every((p) => p.cpuPercent === null && p.memoryUsedBytes === null));
    });

    test('many samples of many VMs are written in one flush', async () => {
      for (let v = 0; v < 300; v++) history.record(`vm_many${v}`, countersAt(clock.now(), t0));
      assert.equal(history.pendingSamples, 300);
      assert.equal(await history.flush(), 300);
      assert.equal(history.pendingSamples, 0);
      const rows = await t.plane.store.db
        .selectFrom('vm_metric_samples')
        .select('vm_id')
        .where('vm_id', 'like', 'vm_many%')
        .execute();
      assert.equal(rows.length, 300);
    });

    test('bad periods and steps are refused with ZEN_BAD_REQUEST', async () => {
      const bad = (request: { from: number; to: number; stepSeconds: number }) =>
        assert.rejects(
          history.history('vm_A', request),
          (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
        );
      await bad({ from: t0 + hour, to: t0, stepSeconds: 60 });
      await bad({ from: t0, to: t0 + hour, stepSeconds: 0 });
      await bad({ from: t0, to: t0 + hour, stepSeconds: 1.5 });
      await bad({ from: t0, to: t0 + 30 * 24 * hour, stepSeconds: 1 });
    });
  });
}
