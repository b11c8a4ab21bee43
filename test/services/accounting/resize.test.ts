import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import type { DiscoveredObject } from '../../../src/hypervisors/driver.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';
import { kvmHost, runningVm } from './kvm-host.js';

const GiB = 2 ** 30;
const hour = 3_600_000;
const t0 = Date.UTC(2026, 7, 3);

const tree: DiscoveredObject[] = [
  { kind: 'cluster', externalId: 'cl', name: 'silver', parent: null, facts: {} },
  kvmHost('cl'),
];

const vm = (name: string, cpus: number, memoryGiB: number, diskGiB: number) =>
  runningVm(name, { cpus, memoryGiB, diskGiB });

for (const kind of storeKinds) {
  describe(`a resized VM on ${kind}`, () => {
    const clock = new ManualClock(t0);
    let t: TestPlane;
    before(async () => {
      t = await startTestPlane({ store: kind, clock });
      await t.plane.inventory.applySnapshot('conn_R', [
        ...tree,
        vm('grown', 2, 4, 10),
        vm('legacy', 2, 4, 10),
      ]);
      await t.plane.accounting.addRateCard(
        {
          effectiveFrom: t0,
          body: {
            currency: 'EUR',
            timeZone: 'UTC',
            rates: [{ vcpuHour: '0.04', memoryGiBHour: '0.01', diskGiBHour: '0.001' }],
          },
        },
        'usr_test',
      );
      // 'legacy' stands for a VM known from before sizes were recorded: it has no size history.
      const legacy = t.plane.inventory.resolve('vm', 'legacy').id;
      await t.plane.store.db.deleteFrom('vm_allocations').where('vm_id', '=', legacy).execute();
      await clock.advance(9.5 * hour);
      await t.plane.inventory.applyChanges('conn_R', [
        vm('grown', 4, 8, 20),
        vm('legacy', 4, 8, 20),
      ]);
      await clock.advance(14.5 * hour);
    });
    after(async () => t.close());

    test('a VM resized mid-day costs the sum of both parts, each at its size, to the cent', async () => {
      const report = await t.plane.accounting.report({
        from: t0,
        to: t0 + 24 * hour,
        granularity: 'daily',
        groupBy: 'vm',
      });
      for (const name of ['grown', 'legacy']) {
        const row = report.rows.find((r) => r.label === name)!;
        // vCPU: 9.5 h × 2 × 0.04 + 14.5 h × 4 × 0.04 = 0.76 + 2.32; memory: 0.38 + 1.16;
        // disk: 0.095 + 0.29 = 0.385, rounded once (half up) to 0.39. At today's size alone: 6.24.
        assert.deepEqual(
          row.cost,
          { vcpu: 308, memory: 154, disk: 39, fixed: 0, discount: 0, total: 501 },
          name,
        );
        assert.equal(row.vcpuMs, 2 * 9.5 * hour + 4 * 14.5 * hour, name);
        assert.equal(row.memoryMiBMs, 4096 * 9.5 * hour + 8192 * 14.5 * hour, name);
      }
      const hourly = await t.plane.accounting.report({
        from: t0 + 9 * hour,
        to: t0 + 10 * hour,
        granularity: 'hourly',
        groupBy: 'vm',
      });
      // The hour of the resize: ½ h × 2 vCPUs + ½ h × 4 vCPUs at 0.04.
      for (const row of hourly.rows) assert.equal(row.cost.vcpu, 12, row.label);
    });

    test('the size history is kept: the earlier size from creation, the new one from the resize', async () => {
      for (const name of ['grown', 'legacy']) {
        const id = t.plane.inventory.resolve('vm', name).id;
        const rows = await t.plane.store.db
          .selectFrom('vm_allocations')
          .select(['from_ts', 'cpus', 'memory_bytes', 'disk_bytes'])
          .where('vm_id', '=', id)
          .orderBy('from_ts')
          .execute();
        assert.deepEqual(
          rows.map((r) => [
            Number(r.from_ts),
            r.cpus,
            Number(r.memory_bytes),
            Number(r.disk_bytes),
          ]),
          [
            [t0, 2, 4 * GiB, 10 * GiB],
            [t0 + 9.5 * hour, 4, 8 * GiB, 20 * GiB],
          ],
          name,
        );
      }
    });
  });
}
