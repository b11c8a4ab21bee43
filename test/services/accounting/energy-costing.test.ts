/**
 * Energy in reports, pure metering: the cost of what a host's machine draws is priced per kWh
 * (time-of-use windows as for every price) and shared by the VMs running on the host by their
 * running vCPU-ms; energy drawn with no VM running is the host's alone; a card without an energy
 * price leaves reports as they were.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WattSample } from '../../../src/services/accounting/energy.js';
import {
  meter,
  type MeterHost,
  type MeterInput,
  type MeterVm,
} from '../../../src/services/accounting/metering.js';
import { compileRateCard, type RateCardBody } from '../../../src/services/accounting/rate-card.js';

const minute = 60_000;
const hour = 60 * minute;
const t0 = Date.UTC(2026, 5, 1);

const host: MeterHost = {
  id: 'h1',
  name: 'hv-1',
  cluster: 'c1',
  hypervisor: 'kvm',
  facts: { host: 'hv-1', 'host.id': 'h1', cluster: 'c1' },
};
const vm = (id: string, cpus: number): MeterVm => ({
  id,
  name: id,
  cpus,
  memoryMiB: 1024,
  diskMiB: 0,
  facts: {},
  tags: [],
});

/** 1000 W every minute for 13 hours: 1 kWh per hour. */
const samples: WattSample[] = Array.from({ length: 13 * 60 + 1 }, (_, i) => ({
  at: t0 + i * minute,
  watts: 1000,
}));

const withEnergy: RateCardBody = {
  currency: 'EUR',
  timeZone: 'UTC',
  windows: [
    { name: 'night', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], hours: [0, 6] },
  ],
  rates: [
    { window: 'night', kWh: '0.10', vcpuHour: '0.01' },
    { kWh: '0.30', vcpuHour: '0.01' },
  ],
};

function input(body: RateCardBody, groupBy: MeterInput['groupBy'] = 'vm'): MeterInput {
  return {
    from: t0,
    to: t0 + 13 * hour,
    now: t0 + 24 * hour,
    granularity: 'daily',
    groupBy,
    timeZone: 'UTC',
    cards: [
      compileRateCard({
        id: 'c',
        version: 1,
        effectiveFrom: t0 - hour,
        body,
        createdBy: 'test',
        createdAt: t0,
      }),
    ],
    vms: new Map([
      ['a', vm('a', 1)],
      ['b', vm('b', 3)],
      ['c', vm('c', 8)],
    ]),
    hosts: new Map([['h1', host]]),
    // a runs 12 hours; b joins for the last 6; c is stopped all along (it holds no share).
    intervals: [
      { vmId: 'a', hostId: 'h1', powerState: 'running', from: t0, to: t0 + 12 * hour },
      { vmId: 'b', hostId: 'h1', powerState: 'running', from: t0 + 6 * hour, to: t0 + 12 * hour },
      { vmId: 'c', hostId: 'h1', powerState: 'stopped', from: t0, to: t0 + 12 * hour },
    ],
    ownership: [],
    defaultOwnership: () => ({ owner: 'o', group: 'g', costCenter: 'cc' }),
    energy: { maxGapMs: 3 * minute, hosts: new Map([['h1', { machineId: 'm1', samples }]]) },
  };
}

test("the host's energy cost is shared by running vCPU-ms, priced by the window it is drawn in", () => {
  const result = meter(input(withEnergy));
  const row = (id: string) => result.rows.find((r) => r.key === id)!;
  // Night (0–6 h): 6 kWh × 0.10, all a's. Day (6–12 h): 6 kWh × 0.30 = 1.80, a 1 : b 3.
  assert.equal(row('a').cost.energy, 60 + 45);
  assert.equal(row('b').cost.energy, 135);
  assert.equal(row('c').cost.energy, 0);
  assert.ok(Math.abs(row('a').energyKWh! - 7.5) < 1e-6, String(row('a').energyKWh));
  assert.ok(Math.abs(row('b').energyKWh! - 4.5) < 1e-6, String(row('b').energyKWh));
  // The total counts the energy share beside the vCPU-hours (12 h × 0.01, 18 vCPU-h × 0.01).
  assert.equal(row('a').cost.total, 105 + 12);
  assert.equal(row('b').cost.total, 135 + 18);
  // The 13th hour nobody ran: 1 kWh × 0.30 is the host's, in nobody's share.
  assert.deepEqual(result.energy, [
    {
      hostId: 'h1',
      hostName: 'hv-1',
      machineId: 'm1',
      kWh: 13,
      coveredMs: 13 * hour,
      cost: 60 + 180 + 30,
      unsharedCost: 30,
    },
  ]);
  assert.equal(result.totals.energy, 240);
});

test('grouped by host, a row carries what the machine drew in its bucket, shared or not', () => {
  const result = meter(input(withEnergy, 'host'));
  assert.equal(result.rows.length, 1);
  assert.deepEqual(result.rows[0]!.machineEnergy, { kWh: 13, cost: 270 });
  assert.equal(result.rows[0]!.cost.energy, 240);
});

test('a card without an energy price leaves rows, totals and the report as they were', () => {
  const plain: RateCardBody = { ...withEnergy, rates: [{ vcpuHour: '0.01' }] };
  const result = meter(input(plain));
  assert.equal(result.energy, undefined);
  for (const row of result.rows) {
    assert.equal('energy' in row.cost, false);
    assert.equal('energyKWh' in row, false);
  }
  assert.equal('energy' in result.totals, false);
  assert.equal(result.rows.find((r) => r.key === 'a')!.cost.total, 12);
});

test('a machine without samples costs nothing and covers nothing', () => {
  const empty = input(withEnergy);
  empty.energy = {
    maxGapMs: 3 * minute,
    hosts: new Map([['h1', { machineId: 'm1', samples: [] }]]),
  };
  const result = meter(empty);
  assert.equal(result.energy![0]!.kWh, 0);
  assert.equal(result.energy![0]!.coveredMs, 0);
  assert.equal(result.rows.find((r) => r.key === 'a')!.cost.energy, 0);
});
