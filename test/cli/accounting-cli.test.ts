import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import type { DiscoveredObject } from '../../src/hypervisors/driver.js';
import {
  adminPassword,
  startTestServer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { cliRunner } from '../../src/testing/server-process.js';
import { kvmHost, runningVm } from '../services/accounting/kvm-host.js';

const hour = 3_600_000;
const t0 = Date.UTC(2026, 8, 14);

const objects: DiscoveredObject[] = [
  kvmHost(),
  ...['web-1', 'db-1'].map((name) => runningVm(name, { cpus: 2, memoryGiB: 2 })),
];

describe('zenith accounting report', () => {
  // The server's clock stands still after the setup, so that tokens stay valid.
  const clock = new ManualClock(t0);
  let s: TestServer;
  let zenith: ReturnType<typeof cliRunner>;
  before(async () => {
    s = await startTestServer({ clock });
    await s.plane.inventory.applySnapshot('conn_CLI', objects);
    await s.plane.accounting.addRateCard(
      {
        effectiveFrom: t0,
        body: { currency: 'EUR', timeZone: 'UTC', rates: [{ vcpuHour: '0.05' }] },
      },
      'usr_test',
    );
    const id = (name: string) => s.plane.inventory.resolve('vm', name).id;
    await s.plane.accounting.setOwnership(id('web-1'), { group: 'web' }, 'usr_test');
    await s.plane.accounting.setOwnership(id('db-1'), { group: 'data' }, 'usr_test');
    await clock.advance(2 * hour);
    zenith = cliRunner(s.baseUrl);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => s.close());

  const period = [
    '--from',
    new Date(t0).toISOString(),
    '--to',
    new Date(t0 + 2 * hour).toISOString(),
  ];

  test('prints a table, CSV and JSON, filtered by group', async () => {
    const table = await zenith(['accounting', 'report', ...period, '--group-by', 'group']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /web/);
    assert.match(table.stdout, /data/);
    const csv = await zenith([
      'accounting',
      'report',
      ...period,
      '--granularity',
      'hourly',
      '--format',
      'csv',
      '--group',
      'web',
    ]);
    assert.equal(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trim().split('\r\n');
    assert.match(lines[0]!, /^bucket_start,/);
    assert.equal(lines.length, 3, 'a header and one line per hour of web-1');
    for (const line of lines.slice(1)) assert.match(line, /,web-1,/);
    // 2 vCPUs × 0.05 EUR an hour.
    assert.match(lines[1]!, /,EUR,0\.10,/);
    const json = await zenith(['--json', 'accounting', 'report', ...period, '--vm', 'db-1']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as {
      rows: Array<{ label: string }>;
      totals: { total: number };
    };
    assert.deepEqual(
      report.rows.map((r) => r.label),
      ['db-1'],
    );
    assert.equal(report.totals.total, 20);
  });

  test('bad input says what is wrong, with its code', async () => {
    const bad = await zenith(['accounting', 'report', '--from', 'yesterday', '--to', 'today']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /ZEN_BAD_REQUEST/);
    const unknown = await zenith(['accounting', 'report', ...period, '--vm', 'no-such-vm']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /ZEN_NOT_FOUND/);
  });
});
