import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';
import { kvmHost, runningVm } from './kvm-host.js';

const hour = 3_600_000;
const t0 = Date.UTC(2026, 8, 7);

const host = kvmHost();
const vm = (name: string) => runningVm(name, { cpus: 2, memoryGiB: 2 });

for (const kind of storeKinds) {
  describe(`report filters on ${kind}`, () => {
    const clock = new ManualClock(t0);
    let t: TestPlane;
    const id = (name: string) => t.plane.inventory.resolve('vm', name).id;
    before(async () => {
      t = await startTestPlane({ store: kind, clock });
      await t.plane.inventory.applySnapshot('conn_F', [host, vm('a'), vm('b'), vm('c')]);
      await t.plane.accounting.addRateCard(
        {
          effectiveFrom: t0,
          body: { currency: 'EUR', timeZone: 'UTC', rates: [{ vcpuHour: '0.05' }] },
        },
        'usr_test',
      );
      for (const [name, owner, group, costCenter] of [
        ['a', 'ann', 'research', 'cc-1'],
        ['b', 'bob', 'research', 'cc-2'],
        ['c', 'cy', 'ops', 'cc-2'],
      ] as const)
        await t.plane.accounting.setOwnership(id(name), { owner, group, costCenter }, 'usr_test');
      await clock.advance(3 * hour);
      // From now on b belongs to ops.
      await t.plane.accounting.setOwnership(id('b'), { group: 'ops' }, 'usr_test');
      await clock.advance(3 * hour);
    });
    after(async () => t.close());

    const report = (filter: { vm?: string; owner?: string; group?: string; costCenter?: string }) =>
      t.plane.accounting.report({
        from: t0,
        to: t0 + 6 * hour,
        granularity: 'hourly',
        groupBy: 'vm',
        ...filter,
      });

    test('a filtered report holds exactly the rows of the VMs, and the times, that match', async () => {
      const all = await report({});
      const rowsOf = (names: string[], hours: number[]) =>
        all.rows.filter(
          (r) => names.some((n) => r.key === id(n)) && hours.includes((r.bucketStart - t0) / hour),
        );
      const research = await report({ group: 'research' });
      assert.deepEqual(
        research.rows,
        [...rowsOf(['a', 'b'], [0, 1, 2]), ...rowsOf(['a'], [3, 4, 5])].sort(
          (x, y) => x.bucketStart - y.bucketStart || (x.key < y.key ? -1 : 1),
        ),
      );
      // 2 vCPUs × 0.05 = 0.10 an hour: a for 6 hours, b for the 3 hours it was in research.
      assert.equal(research.totals.total, 6 * 10 + 3 * 10);
      const onlyC = await report({ vm: 'c' });
      assert.deepEqual(onlyC.rows, rowsOf(['c'], [0, 1, 2, 3, 4, 5]));
      const cc2Ops = await report({ costCenter: 'cc-2', group: 'ops' });
      assert.deepEqual(
        [...new Set(cc2Ops.rows.map((r) => r.key))].sort(),
        [id('b'), id('c')].sort(),
      );
      assert.equal(cc2Ops.rows.filter((r) => r.key === id('b')).length, 3, 'b only since it moved');
      const bob = await report({ owner: 'bob' });
      assert.equal(bob.totals.total, 6 * 10);
      assert.deepEqual((await report({ owner: 'nobody' })).rows, []);
      await assert.rejects(
        report({ vm: 'no-such-vm' }),
        (error) => isZenithError(error) && error.code === 'ZEN_NOT_FOUND',
      );
    });
  });
}
