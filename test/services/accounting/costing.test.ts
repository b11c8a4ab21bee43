import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { isZenithError } from '../../../src/core/errors.js';
import type {
  DiscoveredObject,
  DiscoveredVm,
  PowerState,
} from '../../../src/hypervisors/driver.js';
import type { RateCardBody } from '../../../src/services/accounting/rate-card.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const GiB = 1024 ** 3;
const hour = 3_600_000;
const minute = 60_000;
// Monday 1 June 2026, 00:00 UTC (02:00 in Berlin).
const t0 = Date.UTC(2026, 5, 1);

const tree: DiscoveredObject[] = [
  { kind: 'datacenter', externalId: 'dc', name: 'dc1', parent: null, facts: {} },
  ...['gold', 'silver'].flatMap((name): DiscoveredObject[] => [
    {
      kind: 'cluster',
      externalId: name,
      name,
      parent: { kind: 'datacenter', externalId: 'dc' },
      facts: {},
    },
    {
      kind: 'host',
      externalId: `${name}-1`,
      name: `${name}-1`,
      parent: { kind: 'cluster', externalId: name },
      facts: { 'hypervisor.type': 'kvm', 'cpu.cores': 32 },
    },
  ]),
];

const vm = (
  name: string,
  host: 'gold' | 'silver',
  power: PowerState,
  size: { cpus?: number; memoryGiB?: number; diskGiB?: number; os?: string } = {},
): DiscoveredVm => ({
  kind: 'vm',
  externalId: name,
  name,
  parent: { kind: 'host', externalId: `${host}-1` },
  hostExternalId: `${host}-1`,
  powerState: power,
  facts: {
    'power.state': power,
    'hypervisor.type': 'kvm',
    'cpu.count': size.cpus ?? 2,
    'memory.bytes': (size.memoryGiB ?? 4) * GiB,
    'disk.totalBytes': (size.diskGiB ?? 0) * GiB,
    'guest.os': size.os ?? 'debian12',
  },
});

/** Peak is 08:00–20:00 Berlin time on weekdays: 06:00–18:00 UTC in June. */
const cardV1: RateCardBody = {
  currency: 'EUR',
  timeZone: 'Europe/Berlin',
  windows: [{ name: 'peak', days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: [8, 20] }],
  rates: [
    { match: { cluster: 'gold' }, window: 'peak', vcpuHour: '0.10', memoryGiBHour: '0.02' },
    { match: { cluster: 'gold' }, vcpuHour: '0.05', memoryGiBHour: '0.01', diskGiBHour: '0.001' },
    {
      match: { cluster: 'silver' },
      vcpuHour: '0.03',
      memoryGiBHour: '0.005',
      diskGiBHour: '0.001',
    },
  ],
  fixed: [{ name: 'windows licence', match: { 'guest.os': 'windows2022' }, monthly: '30.00' }],
  discounts: [{ group: 'research', percent: '10' }],
};

for (const kind of storeKinds) {
  describe(`accounting costs on ${kind}`, () => {
    const clock = new ManualClock(t0);
    const conn = 'conn_TEST';
    let t: TestPlane;
    const id = (name: string) => t.plane.inventory.resolve('vm', name).id;
    const move = async (at: number, ...vms: DiscoveredVm[]) => {
      await clock.advance(at - clock.now());
      await t.plane.inventory.applyChanges(conn, vms);
    };
    const report = (
      from: number,
      to: number,
      groupBy: 'vm' | 'cluster' | 'group' | 'owner',
      granularity: 'hourly' | 'daily' | 'monthly' = 'daily',
    ) => t.plane.accounting.report({ from, to, groupBy, granularity });

    before(async () => {
      t = await startTestPlane({ store: kind, clock });
      await t.plane.inventory.applySnapshot(conn, [
        ...tree,
        vm('a', 'gold', 'running'),
        vm('b', 'silver', 'suspended'),
      ]);
      await t.plane.accounting.addRateCard({ effectiveFrom: t0, body: cardV1 }, 'usr_test');
    });
    after(async () => t.close());

    test('a VM that migrates mid-hour between clusters with different rates is costed per part', async () => {
      await move(t0 + 30 * minute, vm('a', 'silver', 'running'));
      await clock.advance(30 * minute);
      const byCluster = await report(t0, t0 + hour, 'cluster', 'hourly');
      const cost = Object.fromEntries(byCluster.rows.map((r) => [r.key, r.cost.total]));
      // gold, off-peak: ½ h × (2 × 0.05 + 4 × 0.01) = 0.07; silver: ½ h × (2 × 0.03 + 4 × 0.005) + b's hour = 0.04 + 0.02
      assert.deepEqual(cost, { gold: 7, silver: 6 });
      const byVm = await report(t0, t0 + hour, 'vm', 'hourly');
      const a = byVm.rows.find((r) => r.key === id('a'))!;
      assert.equal(a.cost.total, 11);
      assert.equal(a.runningMs, hour);
      assert.equal(a.vcpuMs, 2 * hour);
      assert.equal(byVm.currency, 'EUR');
      assert.deepEqual(
        byVm.rateCards.map((c) => c.version),
        [1],
      );
    });

    test('suspended time is not billed for CPU (memory still is)', async () => {
      const byVm = await report(t0, t0 + hour, 'vm', 'hourly');
      const b = byVm.rows.find((r) => r.key === id('b'))!;
      assert.deepEqual([b.runningMs, b.suspendedMs, b.vcpuMs], [0, hour, 0]);
      assert.deepEqual(b.cost, { vcpu: 0, memory: 2, disk: 0, fixed: 0, discount: 0, total: 2 });
    });

    test('a peak window boundary in the middle of an interval splits it', async () => {
      // a runs on gold from 05:30 to 06:30 UTC; peak starts at 08:00 Berlin = 06:00 UTC.
      await move(t0 + 5.5 * hour, vm('a', 'gold', 'running'));
      await move(t0 + 6.5 * hour, vm('a', 'gold', 'stopped'));
      const byVm = await report(t0 + 5.5 * hour, t0 + 6.5 * hour, 'vm');
      const a = byVm.rows.find((r) => r.key === id('a'))!;
      // ½ h off-peak × 0.14 + ½ h peak × (2 × 0.10 + 4 × 0.02) = 0.07 + 0.14
      assert.equal(a.cost.vcpu + a.cost.memory, 21);
      assert.equal(a.cost.vcpu, 5 + 10);
    });

    test('a price change on a date applies only after it, and the report names both versions', async () => {
      await clock.advance(t0 + 7 * hour - clock.now());
      const v2 = structuredClone(cardV1);
      v2.rates[0]!.vcpuHour = '0.20';
      await assert.rejects(
        t.plane.accounting.addRateCard({ effectiveFrom: t0 + 6 * hour, body: v2 }, 'usr_test'),
        (error) => isZenithError(error) && error.code === 'ZEN_CONFLICT',
        'a version may not reprice the past',
      );
      await t.plane.accounting.addRateCard({ effectiveFrom: t0 + 8 * hour, body: v2 }, 'usr_test');
      await move(t0 + 7.5 * hour, vm('a', 'gold', 'running'));
      await move(t0 + 8.5 * hour, vm('a', 'gold', 'stopped'));
      const byVm = await report(t0 + 7.5 * hour, t0 + 8.5 * hour, 'vm');
      const a = byVm.rows.find((r) => r.key === id('a'))!;
      // ½ h × 2 × 0.10 before 08:00, ½ h × 2 × 0.20 after it.
      assert.equal(a.cost.vcpu, 10 + 20);
      assert.deepEqual(
        byVm.rateCards.map((c) => c.version),
        [1, 2],
      );
      const before = await report(t0, t0 + 8 * hour, 'vm');
      assert.deepEqual(
        before.rateCards.map((c) => c.version),
        [1],
      );
    });

    test('group totals equal the sum of their VMs to the cent, and every dimension adds up to the same total', async () => {
      await move(
        t0 + 9 * hour,
        vm('c', 'gold', 'running', { cpus: 3, memoryGiB: 7, diskGiB: 33, os: 'windows2022' }),
        vm('d', 'silver', 'running', { cpus: 1, memoryGiB: 1, diskGiB: 17 }),
        vm('e', 'gold', 'running', { cpus: 5, memoryGiB: 3, diskGiB: 9 }),
      );
      await t.plane.accounting.setOwnership(
        id('c'),
        { owner: 'carol', group: 'research', costCenter: 'cc-1' },
        'usr_test',
      );
      await t.plane.accounting.setOwnership(
        id('d'),
        { owner: 'dave', group: 'research', costCenter: 'cc-2' },
        'usr_test',
      );
      await t.plane.accounting.setOwnership(
        id('e'),
        { owner: 'erin', group: 'ops', costCenter: 'cc-2' },
        'usr_test',
      );
      // Odd durations and power changes so that rounding matters.
      await move(
        t0 + 9 * hour + 7 * minute + 13_001,
        vm('c', 'silver', 'running', { cpus: 3, memoryGiB: 7, diskGiB: 33, os: 'windows2022' }),
      );
      await move(
        t0 + 13 * hour + 41 * minute + 7,
        vm('d', 'silver', 'suspended', { cpus: 1, memoryGiB: 1, diskGiB: 17 }),
      );
      await move(
        t0 + 19 * hour + 3 * minute + 999,
        vm('e', 'silver', 'stopped', { cpus: 5, memoryGiB: 3, diskGiB: 9 }),
      );
      await clock.advance(t0 + 2 * 24 * hour - clock.now());
      const from = t0 + 9 * hour;
      const to = t0 + 2 * 24 * hour;
      const byVm = await report(from, to, 'vm', 'hourly');
      const byGroup = await report(from, to, 'group', 'hourly');
      const groupOf: Record<string, string> = {
        [id('c')]: 'research',
        [id('d')]: 'research',
        [id('e')]: 'ops',
      };
      const expected = new Map<string, number>();
      for (const row of byVm.rows) {
        const group = groupOf[row.key];
        if (!group) continue;
        const key = `${row.bucketStart}/${group}`;
        expected.set(key, (expected.get(key) ?? 0) + row.cost.total);
      }
      for (const row of byGroup.rows.filter((r) => r.key !== 'unassigned'))
        assert.equal(
          row.cost.total,
          expected.get(`${row.bucketStart}/${row.key}`),
          `${row.key} at ${row.bucketStart}`,
        );
      const research = byGroup.rows.filter((r) => r.key === 'research');
      assert.ok(
        research.every((r) => r.cost.discount > 0),
        'research gets its 10% discount',
      );
      assert.ok(byVm.rows.find((r) => r.key === id('c'))!.cost.fixed > 0, 'the licence is charged');
      for (const groupBy of ['cluster', 'owner', 'vm'] as const) {
        // Atoms are rounded per bucket, so totals agree at the same granularity.
        const other = await report(from, to, groupBy, 'hourly');
        assert.deepEqual(other.totals, byGroup.totals, `totals by ${groupBy}`);
      }
      for (const row of [...byVm.rows, ...byGroup.rows])
        assert.equal(
          row.cost.total,
          row.cost.vcpu + row.cost.memory + row.cost.disk + row.cost.fixed - row.cost.discount,
        );
    });

    test('metered time reconciles exactly with the location history', async () => {
      const from = t0;
      const to = clock.now();
      const byVm = await report(from, to, 'vm', 'monthly');
      for (const name of ['a', 'b', 'c', 'd', 'e']) {
        const history = await t.plane.inventory.locations.history(id(name));
        const expected = { running: 0, suspended: 0, stopped: 0 };
        for (const interval of history) {
          const ms = Math.min(interval.to ?? to, to) - Math.max(interval.from, from);
          if (ms > 0) expected[interval.powerState as keyof typeof expected] += ms;
        }
        const row = byVm.rows.find((r) => r.key === id(name))!;
        assert.deepEqual(
          { running: row.runningMs, suspended: row.suspendedMs, stopped: row.stoppedMs },
          expected,
          name,
        );
      }
    });

    test('ownership changes are kept as history and split the cost between owners', async () => {
      const c = id('c');
      await clock.advance(hour);
      await t.plane.accounting.setOwnership(c, { owner: 'cathy' }, 'usr_test');
      const history = await t.plane.accounting.ownershipHistory(c);
      assert.deepEqual(
        history.map((h) => [h.owner, h.group, h.to === null]),
        [
          ['cathy', 'research', true],
          ['carol', 'research', false],
        ],
      );
      await clock.advance(hour);
      const byOwner = await report(clock.now() - 2 * hour, clock.now(), 'owner');
      assert.deepEqual(
        byOwner.rows.map((r) => r.key).filter((k) => k.startsWith('ca')),
        ['carol', 'cathy'],
      );
    });
  });
}
