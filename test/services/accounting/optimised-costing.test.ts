import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../../src/hypervisors/simulated/fleet.js';
import type { PowerState } from '../../../src/services/inventory/model.js';
import {
  dimensions,
  meter,
  type MeterHost,
  type MeterInput,
  type MeterInterval,
  type MeterVm,
  type OwnershipSpan,
} from '../../../src/services/accounting/metering.js';
import { compileRateCard, type RateCardBody } from '../../../src/services/accounting/rate-card.js';
import type { Granularity } from '../../../src/services/accounting/timeline.js';
import { referenceMeter } from './reference-meter.js';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;
// The US leaves daylight saving time on 1 November 2026: the period crosses it.
const from = Date.UTC(2026, 9, 27, 3, 17);
const to = Date.UTC(2026, 10, 6, 11, 0);

/** A fleet whose history changes at odd instants, so that most buckets are cut somewhere. */
function randomFleet(seed: number): Omit<MeterInput, 'granularity' | 'groupBy' | 'timeZone'> {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const hosts = new Map<string, MeterHost>();
  for (let h = 0; h < 6; h++) {
    const cluster = `cl-${h % 3}`;
    hosts.set(`host_${h}`, {
      id: `host_${h}`,
      name: `h${h}`,
      cluster,
      hypervisor: h % 2 ? 'kvm' : 'vmware',
      facts: { cluster, 'cpu.cores': h < 3 ? 64 : 32, host: `h${h}` },
    });
  }
  const vms = new Map<string, MeterVm>();
  const intervals: MeterInterval[] = [];
  const ownership: OwnershipSpan[] = [];
  const states: PowerState[] = ['running', 'running', 'stopped', 'suspended', 'paused', 'unknown'];
  for (let v = 0; v < 40; v++) {
    const id = `vm_${String(v).padStart(3, '0')}`;
    vms.set(id, {
      id,
      name: `v${v}`,
      cpus: 1 + Math.floor(random() * 8),
      memoryMiB: 1 + Math.floor(random() * 65_536),
      diskMiB: Math.floor(random() * 500_000),
      facts: { 'guest.os': pick(['debian12', 'windows2022']) },
      tags: random() < 0.3 ? ['licensed'] : [],
    });
    // Some VMs start before the period, some inside it; some leave gaps; the last interval may stay open.
    let at = from - day + Math.floor(random() * 3 * day);
    while (at < to + day) {
      const length =
        random() < 0.5 ? Math.floor(random() * 3 * hour) + 1 : Math.floor(random() * 3 * day) + 1;
      const open = at + length >= to + day && random() < 0.5;
      intervals.push({
        vmId: id,
        hostId: random() < 0.05 ? null : pick([...hosts.keys()]),
        powerState: pick(states),
        from: at,
        to: open ? null : at + length,
      });
      if (open) break;
      at += length + (random() < 0.1 ? Math.floor(random() * day) : 0);
    }
    let ownedFrom = from - Math.floor(random() * day);
    while (random() < 0.8 && ownedFrom < to) {
      const length = Math.floor(random() * 4 * day) + minute;
      ownership.push({
        vmId: id,
        owner: pick(['ann', 'bob', 'cy']),
        group: pick(['research', 'ops', 'sales']),
        costCenter: pick(['cc-1', 'cc-2']),
        from: ownedFrom,
        to: random() < 0.2 ? null : ownedFrom + length,
      });
      if (ownership[ownership.length - 1]!.to === null) break;
      ownedFrom += length + (random() < 0.3 ? Math.floor(random() * hour) : 0);
    }
  }
  // India is 5:30 ahead of UTC: its whole local hours cut UTC hours in half.
  const v1: RateCardBody = {
    currency: 'EUR',
    timeZone: 'Asia/Kolkata',
    windows: [
      { name: 'peak', days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: [9, 18] },
      { name: 'night', days: ['sat', 'sun', 'mon'], hours: [0, 6] },
    ],
    rates: [
      { match: { 'cpu.cores': 64 }, window: 'peak', vcpuHour: '0.0451', memoryGiBHour: '0.0063' },
      { match: { cluster: ['cl-1', 'cl-2'] }, window: 'night', vcpuHour: '0.013' },
      { match: { 'cpu.cores': 64 }, vcpuHour: '0.031', diskGiBHour: '0.000211' },
      { vcpuHour: '0.02', memoryGiBHour: '0.003', diskGiBHour: '0.0001' },
    ],
    fixed: [
      { name: 'licence', match: { 'guest.os': 'windows2022' }, monthly: '29.99' },
      { name: 'support', match: { tag: 'licensed' }, monthly: '3.33' },
    ],
    discounts: [{ group: 'research', percent: '12.5' }],
  };
  const v2: RateCardBody = {
    ...v1,
    timeZone: 'Europe/Berlin',
    rates: [{ vcpuHour: '0.027', memoryGiBHour: '0.0041', diskGiBHour: '0.00013' }],
  };
  const cards = [
    { body: v1, effectiveFrom: from + 5 * hour + 13 * minute },
    { body: v2, effectiveFrom: from + 4 * day + 7 * hour },
  ].map((c, i) =>
    compileRateCard({
      id: `rateCard_${i}`,
      version: i + 1,
      createdBy: 'test',
      createdAt: 0,
      ...c,
    }),
  );
  intervals.sort((x, y) => (x.vmId < y.vmId ? -1 : x.vmId > y.vmId ? 1 : x.from - y.from));
  return {
    from,
    to,
    now: to - 7 * hour - 11 * minute,
    cards,
    vms,
    hosts,
    intervals,
    ownership,
    defaultOwnership: (vmId) => ({
      owner: `creator-${vmId}`,
      group: 'unassigned',
      costCenter: '-',
    }),
  };
}

test('the optimised costing equals the piece-by-piece reference on a random fleet, to the minor unit', () => {
  for (const seed of [1, 2]) {
    const fleet = randomFleet(seed);
    for (const granularity of ['hourly', 'daily', 'monthly'] as Granularity[])
      for (const timeZone of ['UTC', 'America/New_York'])
        for (const groupBy of dimensions) {
          const input: MeterInput = { ...fleet, granularity, groupBy, timeZone };
          const expected = referenceMeter(input);
          const actual = meter(input);
          const what = `seed ${seed}, ${granularity} in ${timeZone} by ${groupBy}`;
          assert.ok(expected.rows.length > 0, what);
          assert.deepEqual(actual.totals, expected.totals, what);
          assert.deepEqual(actual.cardsUsed, expected.cardsUsed, what);
          assert.deepEqual(actual.rows, expected.rows, what);
          assert.deepEqual(actual.vmsByKey, expected.vmsByKey, what);
        }
  }
});

test('the optimised costing refuses a report with too many rows, as the reference does', () => {
  const input: MeterInput = {
    ...randomFleet(4),
    granularity: 'hourly',
    groupBy: 'vm',
    timeZone: 'UTC',
    maxRows: 500,
  };
  for (const run of [meter, referenceMeter])
    assert.throws(
      () => run(input),
      (error: unknown) => (error as { code?: string }).code === 'ZEN_REPORT_TOO_LARGE',
    );
});
