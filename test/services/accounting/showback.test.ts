import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';
import { kvmHost, runningVm } from './kvm-host.js';

const hour = 3_600_000;
// 30 June 2026, 22:00 UTC: the period crosses into July.
const t0 = Date.UTC(2026, 5, 30, 22);

const host = kvmHost();
const vm = (name: string) => runningVm(name, { cpus: 1, memoryGiB: 1 });

for (const kind of storeKinds) {
  describe(`showback on ${kind}`, () => {
    const clock = new ManualClock(t0);
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind, clock });
      await t.plane.inventory.applySnapshot('conn_S', [host, vm('june')]);
      await clock.advance(hour);
      await t.plane.inventory.applyChanges('conn_S', [], [{ kind: 'vm', externalId: 'june' }]);
      await clock.advance(2 * hour);
      await t.plane.inventory.applyChanges('conn_S', [vm('july')]);
      await clock.advance(5 * hour);
    });
    after(async () => t.close());

    test("a group's VM count is its distinct VMs over the whole period, not the largest month's", async () => {
      const showback = await t.plane.accounting.showback({ from: t0, to: clock.now() });
      assert.deepEqual(
        showback.groups.map((g) => [g.key, g.vms, g.runningMs]),
        [['unassigned', 2, 6 * hour]],
      );
      const monthly = await t.plane.accounting.report({
        from: t0,
        to: clock.now(),
        granularity: 'monthly',
        groupBy: 'group',
      });
      assert.deepEqual(
        monthly.rows.map((r) => r.vms),
        [1, 1],
      );
    });
  });
}
