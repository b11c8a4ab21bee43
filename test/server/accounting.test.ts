import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import type { DiscoveredObject } from '../../src/hypervisors/driver.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { parseCsv } from '../../src/testing/csv-reader.js';

const t0 = Date.UTC(2026, 5, 1);
const hour = 3_600_000;
const card = {
  effectiveFrom: t0,
  currency: 'EUR',
  timeZone: 'Europe/Berlin',
  windows: [{ name: 'peak', days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: [8, 20] }],
  rates: [{ vcpuHour: '0.05', memoryGiBHour: '0.01', diskGiBHour: '0.0001' }],
  discounts: [{ group: 'research', percent: '12.5' }],
};
const objects: DiscoveredObject[] = [
  { kind: 'datacenter', externalId: 'dc', name: 'dc1', parent: null, facts: {} },
  {
    kind: 'cluster',
    externalId: 'cl',
    name: 'cl1',
    parent: { kind: 'datacenter', externalId: 'dc' },
    facts: {},
  },
  {
    kind: 'host',
    externalId: 'h',
    name: 'h1',
    parent: { kind: 'cluster', externalId: 'cl' },
    facts: { 'hypervisor.type': 'kvm' },
  },
  {
    kind: 'vm',
    externalId: 'v',
    name: 'web-1',
    parent: { kind: 'host', externalId: 'h' },
    hostExternalId: 'h',
    powerState: 'running',
    facts: { 'cpu.count': 2, 'memory.bytes': 4 * 1024 ** 3, 'disk.totalBytes': 10 * 1024 ** 3 },
  } as DiscoveredObject,
];

describe('accounting API', () => {
  const clock = new ManualClock(t0);
  let s: TestServer;
  let admin: string;
  let viewer: string;
  let operator: string;
  before(async () => {
    s = await startTestServer({ clock });
    admin = await s.login();
    for (const [name, role] of [
      ['vera', 'viewer'],
      ['otto', 'operator'],
    ] as const)
      await s.plane.identities.createUser({ name, role, password: `${name}-password-long` });
    viewer = await s.login('vera', 'vera-password-long');
    operator = await s.login('otto', 'otto-password-long');
    await s.plane.inventory.applySnapshot('conn_TEST', objects);
  });
  after(async () => s.close());

  test('only accounting.manage may add rate cards; operators may read reports, viewers may not', async () => {
    assert.equal(
      (await s.request('POST', '/accounting/rate-cards', { token: operator, body: card })).body
        .error.code,
      'ZEN_FORBIDDEN',
    );
    const created = await s.request('POST', '/accounting/rate-cards', { token: admin, body: card });
    assert.equal(created.status, 201);
    assert.equal(created.body.version, 1);
    const list = await s.request('GET', '/accounting/rate-cards', { token: operator });
    assert.equal(list.body.items.length, 1);
    const denied = await s.request('GET', `/accounting/report?from=${t0}&to=${t0 + hour}`, {
      token: viewer,
    });
    assert.deepEqual([denied.status, denied.body.error.code], [403, 'ZEN_FORBIDDEN']);
  });

  test('ownership is set through the API, kept as history, and the report shows the group discount', async () => {
    const vmId = s.plane.inventory.resolve('vm', 'web-1').id;
    await clock.advance(hour);
    const set = await s.request('PUT', `/vms/${vmId}/ownership`, {
      token: admin,
      body: { owner: 'rita', group: 'research', costCenter: 'cc-7' },
    });
    assert.equal(set.status, 200);
    await clock.advance(hour);
    const history = await s.request('GET', `/vms/${vmId}/ownership`, { token: operator });
    assert.deepEqual(
      history.body.items.map((o: { owner: string }) => o.owner),
      ['rita', 'unassigned'],
    );
    const report = await s.request(
      'GET',
      `/accounting/report?from=${t0}&to=${t0 + 2 * hour}&groupBy=group&granularity=hourly`,
      { token: operator },
    );
    assert.equal(report.status, 200);
    const research = report.body.rows.find((r: { key: string }) => r.key === 'research');
    // one hour: 2 × 0.05 + 4 × 0.01 + 10 × 0.0001 = 0.141 → 14 cents; 12.5% off → 2 cents
    assert.deepEqual(
      [
        research.cost.vcpu + research.cost.memory + research.cost.disk,
        research.cost.discount,
        research.cost.total,
      ],
      [14, 2, 12],
    );
    assert.deepEqual(
      report.body.rateCards.map((c: { version: number }) => c.version),
      [1],
    );
    const showback = await s.request('GET', `/accounting/showback?from=${t0}&to=${t0 + 2 * hour}`, {
      token: operator,
    });
    assert.deepEqual(
      showback.body.groups.map((g: { key: string; cost: { total: number } }) => [
        g.key,
        g.cost.total,
      ]),
      [
        ['unassigned', 14],
        ['research', 12],
      ],
    );
  });

  test('the report comes as CSV with money in decimal currency units', async () => {
    const response = await fetch(
      `${s.baseUrl}/api/v1/accounting/report?from=${t0}&to=${t0 + 2 * hour}&groupBy=owner&format=csv`,
      {
        headers: { authorization: `Bearer ${admin}` },
      },
    );
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/csv/);
    const lines = (await response.text()).trim().split('\r\n');
    assert.match(lines[0]!, /^bucket_start,bucket_end,group_by,key/);
    const rita = lines.find((l) => l.includes(',rita,'))!;
    assert.match(rita, /,EUR,0\.10,0\.04,0\.00,0\.00,0\.02,0\.12,1,,,,,$/);
  });

  test('owners and cost centers that look like formulas are CSV text; amounts stay numbers', async () => {
    const vmId = s.plane.inventory.resolve('vm', 'web-1').id;
    const from = clock.now();
    const set = await s.request('PUT', `/vms/${vmId}/ownership`, {
      token: admin,
      body: { owner: '=cmd|"/C calc"!A0', group: 'research', costCenter: '-1+1' },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    await clock.advance(hour);
    for (const [groupBy, expected] of [
      ['owner', `'=cmd|"/C calc"!A0`],
      ['costCenter', "'-1+1"],
    ] as const) {
      const response = await fetch(
        `${s.baseUrl}/api/v1/accounting/report?from=${from}&to=${clock.now()}&groupBy=${groupBy}&format=csv`,
        { headers: { authorization: `Bearer ${admin}` } },
      );
      const [header, ...rows] = parseCsv(await response.text());
      const row = rows.find((r) => r[header!.indexOf('label')] === expected);
      assert.ok(row, `${groupBy}: ${JSON.stringify(rows)}`);
      assert.equal(row[header!.indexOf('key')], expected);
      for (const column of ['vcpu_cost', 'discount', 'total', 'running_hours'])
        assert.match(row[header!.indexOf(column)]!, /^\d+\.\d+$/, column);
    }
  });

  test('bad input is a coded 4xx, never a 5xx, and nothing is written', async () => {
    const bad = async (method: string, path: string, body?: unknown) => {
      const answer = await s.request(method, path, {
        token: admin,
        ...(body !== undefined ? { body } : {}),
      });
      assert.ok(answer.status >= 400 && answer.status < 500, `${path} answered ${answer.status}`);
      return answer.body.error.code as string;
    };
    const later = clock.now() + hour;
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        timeZone: 'Mars/Olympus',
      }),
      'ZEN_BAD_RATE_CARD',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        rates: [{ window: 'night', vcpuHour: '1' }],
      }),
      'ZEN_BAD_RATE_CARD',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        rates: [{ vcpuHour: '0.1e3' }],
      }),
      'ZEN_BAD_REQUEST',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        rates: [{ vcpuHour: '0.00000000001' }],
      }),
      'ZEN_BAD_RATE_CARD',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        windows: [{ name: 'x', days: ['mon'], hours: [20, 8] }],
      }),
      'ZEN_BAD_RATE_CARD',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', {
        ...card,
        effectiveFrom: later,
        currency: 'USD',
      }),
      'ZEN_CONFLICT',
    );
    assert.equal(
      await bad('POST', '/accounting/rate-cards', { ...card, effectiveFrom: t0 }),
      'ZEN_CONFLICT',
    );
    assert.equal(
      await bad('GET', `/accounting/report?from=${t0 + hour}&to=${t0}`),
      'ZEN_BAD_REQUEST',
    );
    assert.equal(
      await bad('GET', `/accounting/report?from=${t0}&to=${t0 + hour}&granularity=weekly`),
      'ZEN_BAD_REQUEST',
    );
    assert.equal(
      await bad('GET', `/accounting/report?from=${t0}&to=${t0 + hour}&timeZone=Nowhere/Land`),
      'ZEN_BAD_RATE_CARD',
    );
    assert.equal(await bad('GET', `/accounting/report?from=0&to=${t0}`), 'ZEN_BAD_REQUEST');
    assert.equal(
      await bad('PUT', '/vms/vm_00000000000000000000000000/ownership', { owner: 'x' }),
      'ZEN_NOT_FOUND',
    );
    assert.equal(
      await bad('PUT', `/vms/${s.plane.inventory.resolve('vm', 'web-1').id}/ownership`, {}),
      'ZEN_BAD_REQUEST',
    );
    assert.equal(await bad('GET', '/accounting/rate-cards/rc_nope'), 'ZEN_NOT_FOUND');
    const list = await s.request('GET', '/accounting/rate-cards', { token: admin });
    assert.equal(list.body.items.length, 1, 'no refused card was stored');
  });
});
