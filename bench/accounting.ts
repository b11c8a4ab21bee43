/**
 * Accounting at scale: a 30-day hourly report over a simulated fleet of 50,000
 * VMs (1,000 hosts) that lived a month of migrations and power changes.
 * The month is written through the inventory's own reconcile path (the
 * location ledger), on an injected clock, from the simulated driver's fleet
 * model; ownership (40 groups) is bulk-inserted. Prints wall time and memory
 * of the report, with SQLite and with PostgreSQL.
 *
 *   node --import tsx bench/accounting.ts [--store sqlite|postgres|both] [--vms-per-host 50] [--step-hours 4] [--changes 0.02]
 *
 * PostgreSQL: ZENITH_TEST_PG_URL, or one started with src/testing/postgres-cli.ts.
 */
import { parseArgs } from 'node:util';
import { ManualClock } from '../src/core/clock.js';
import {
  generateFleet,
  hostObject,
  seededRandom,
  vmObject,
} from '../src/hypervisors/simulated/fleet.js';
import type { RateCardBody } from '../src/services/accounting/rate-card.js';
import { startTestPlane, type StoreKind } from '../src/testing/control-plane.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'both' },
    'vms-per-host': { type: 'string', default: '50' },
    'step-hours': { type: 'string', default: '4' },
    changes: { type: 'string', default: '0.02' },
  },
});
const hour = 3_600_000;
const start = Date.UTC(2026, 5, 1);
const days = 30;

const card: RateCardBody = {
  currency: 'EUR',
  timeZone: 'Europe/Berlin',
  windows: [{ name: 'peak', days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: [8, 20] }],
  rates: [
    {
      match: { 'cpu.cores': 64 },
      window: 'peak',
      vcpuHour: '0.045',
      memoryGiBHour: '0.006',
      diskGiBHour: '0.0002',
    },
    { match: { 'cpu.cores': 64 }, vcpuHour: '0.03', memoryGiBHour: '0.004', diskGiBHour: '0.0002' },
    { window: 'peak', vcpuHour: '0.035', memoryGiBHour: '0.005', diskGiBHour: '0.0001' },
    { vcpuHour: '0.02', memoryGiBHour: '0.003', diskGiBHour: '0.0001' },
  ],
  fixed: [{ name: 'windows licence', match: { 'guest.os': 'windows2022' }, monthly: '29.90' }],
  discounts: [{ group: 'group-07', percent: '15' }],
};

async function measure(store: StoreKind): Promise<void> {
  const clock = new ManualClock(start);
  const t = await startTestPlane({ store, clock });
  try {
    const fleet = generateFleet({
      seed: 7,
      datacenters: 2,
      clustersPerDatacenter: 10,
      hostsPerCluster: 50,
      vmsPerHost: Number(values['vms-per-host']),
    });
    const conn = 'conn_BENCH';
    const hosts = [...fleet.hosts.values()];
    const vms = [...fleet.vms.values()];
    let setup = performance.now();
    await t.plane.inventory.applySnapshot(conn, [
      ...fleet.others,
      ...hosts.map(hostObject),
      ...vms.map(vmObject),
    ]);
    await t.plane.accounting.addRateCard({ effectiveFrom: start, body: card }, 'bench');
    const ownership = vms.map((vm, i) => ({
      vm_id: t.plane.inventory.index.idForExternal(conn, 'vm', vm.externalId)!,
      owner: `user-${i % 500}`,
      group_name: `group-${String(i % 40).padStart(2, '0')}`,
      cost_center: `cc-${i % 12}`,
      from_ts: start,
      to_ts: null,
      changed_by: 'bench',
    }));
    for (let i = 0; i < ownership.length; i += 500)
      await t.plane.store.db
        .insertInto('vm_ownership')
        .values(ownership.slice(i, i + 500))
        .execute();
    const random = seededRandom(11);
    const step = Number(values['step-hours']) * hour;
    const share = Number(values.changes);
    let changes = 0;
    while (clock.now() + step <= start + days * 24 * hour) {
      await clock.advance(step);
      const changed = [];
      for (let n = Math.round(vms.length * share); n > 0; n--) {
        const vm = vms[Math.floor(random() * vms.length)]!;
        if (random() < 0.5)
          vm.hostExternalId = hosts[Math.floor(random() * hosts.length)]!.externalId;
        else
          vm.powerState =
            vm.powerState === 'running' ? (random() < 0.7 ? 'stopped' : 'suspended') : 'running';
        changed.push(vmObject(vm));
      }
      changes += changed.length;
      await t.plane.inventory.applyChanges(conn, changed);
    }
    const intervals = await t.plane.store.db
      .selectFrom('location_history')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    setup = performance.now() - setup;
    for (const groupBy of ['group', 'cluster'] as const) {
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      const began = performance.now();
      const report = await t.plane.accounting.report({
        from: start,
        to: start + days * 24 * hour,
        granularity: 'hourly',
        groupBy,
      });
      const wallMs = performance.now() - began;
      const heapAfter = process.memoryUsage().heapUsed;
      console.log(
        JSON.stringify({
          store,
          vms: vms.length,
          hosts: hosts.length,
          intervals: Number(intervals.n),
          changes,
          setupSeconds: Math.round(setup / 100) / 10,
          report: `30 days hourly by ${groupBy}`,
          rows: report.rows.length,
          total: report.totals.total,
          wallMs: Math.round(wallMs),
          heapGrowthMiB: Math.round((heapAfter - heapBefore) / 2 ** 20),
          maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
        }),
      );
    }
  } finally {
    await t.close();
  }
}

const stores: StoreKind[] =
  values.store === 'both' ? ['sqlite', 'postgres'] : [values.store as StoreKind];
for (const store of stores) await measure(store);
