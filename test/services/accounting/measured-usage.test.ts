import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import type { DiscoveredObject, DiscoveredVm, VmMetrics } from '../../../src/hypervisors/driver.js';
import { reportCsv } from '../../../src/services/accounting/report-csv.js';
import { startTestPlane, storeKinds, type TestPlane } from '../../../src/testing/control-plane.js';

const minute = 60_000;
const hour = 60 * minute;
const t0 = Date.UTC(2026, 6, 6);

const objects: DiscoveredObject[] = [
  { kind: 'cluster', externalId: 'cl', name: 'gold', parent: null, facts: {} },
  {
    kind: 'host',
    externalId: 'h1',
    name: 'h1',
    parent: { kind: 'cluster', externalId: 'cl' },
    facts: { 'hypervisor.type': 'qemu' },
  },
  ...['measured', 'silent', 'no-net'].map((name): DiscoveredVm => ({
    kind: 'vm',
    externalId: name,
    name,
    parent: { kind: 'host', externalId: 'h1' },
    hostExternalId: 'h1',
    powerState: 'running',
    facts: { 'power.state': 'running', 'cpu.count': 1, 'memory.bytes': 2 ** 30 },
  })),
];

/** 20 % of a CPU, 1 MB/s read, 0.5 MB/s written, 2 kB/s in and 3 kB/s out since t0. */
function counters(at: number, net: boolean): VmMetrics {
  const s = (at - t0) / 1000;
  return {
    sampledAt: at,
    cpuTimeMs: (at - t0) / 5,
    memoryUsedBytes: 2 ** 29,
    memoryConfiguredBytes: 2 ** 30,
    diskReadBytes: 1_000_000 * s,
    diskWriteBytes: 500_000 * s,
    diskReadOps: 0,
    diskWriteOps: 0,
    netRxBytes: net ? 2000 * s : null,
    netTxBytes: net ? 3000 * s : null,
  };
}

for (const kind of storeKinds) {
  describe(`measured usage in accounting reports on ${kind}`, () => {
    let t: TestPlane;
    const clock = new ManualClock(t0);
    before(async () => {
      t = await startTestPlane({ store: kind, clock });
      await t.plane.inventory.applySnapshot('conn_M', objects);
      const id = (name: string) => t.plane.inventory.resolve('vm', name).id;
      // Two hours of samples every 15 s (the plane's sampler has no driver to read: these stand in).
      for (let at = t0; at <= t0 + 2 * hour; at += 15_000) {
        t.plane.metrics.record(id('measured'), counters(at, true));
        t.plane.metrics.record(id('no-net'), counters(at, false));
      }
      await t.plane.metrics.flush();
      await clock.advance(3 * hour);
    });
    after(async () => t.close());

    test('a report carries measured CPU-seconds and bytes per VM and bucket; null where nothing was measured', async () => {
      const report = await t.plane.accounting.report({
        from: t0,
        to: t0 + 3 * hour,
        granularity: 'hourly',
        groupBy: 'vm',
      });
      const rowsOf = (name: string) =>
        report.rows.filter((r) => r.label === name).map((r) => r.measured);
      // Each hour: 3600 s × 20 % = 720 CPU-seconds, 3.6 GB read, 1.8 GB written, 7.2/10.8 MB net.
      const hourly = {
        cpuSeconds: 720,
        diskReadBytes: 3_600_000_000,
        diskWriteBytes: 1_800_000_000,
        netRxBytes: 7_200_000,
        netTxBytes: 10_800_000,
      };
      const none = {
        cpuSeconds: null,
        diskReadBytes: null,
        diskWriteBytes: null,
        netRxBytes: null,
        netTxBytes: null,
      };
      assert.deepEqual(rowsOf('measured'), [hourly, hourly, none]);
      assert.deepEqual(rowsOf('no-net'), [
        { ...hourly, netRxBytes: null, netTxBytes: null },
        { ...hourly, netRxBytes: null, netTxBytes: null },
        none,
      ]);
      assert.deepEqual(rowsOf('silent'), [none, none, none]);

      const byCluster = await t.plane.accounting.report({
        from: t0,
        to: t0 + 3 * hour,
        granularity: 'daily',
        groupBy: 'cluster',
      });
      assert.deepEqual(byCluster.rows[0]!.measured, {
        cpuSeconds: 4 * 720,
        diskReadBytes: 4 * 3_600_000_000,
        diskWriteBytes: 4 * 1_800_000_000,
        netRxBytes: 2 * 7_200_000,
        netTxBytes: 2 * 10_800_000,
      });
      const csv = reportCsv(report).split('\r\n');
      assert.match(csv[0]!, /measured_cpu_seconds,.*measured_net_tx_bytes$/);
      const silentLine = csv.find((line) => line.includes(',silent,'))!;
      assert.match(silentLine, /,,,,,$/, 'nothing measured: empty cells, not zeros');
      const showback = await t.plane.accounting.showback({ from: t0, to: t0 + 3 * hour });
      assert.equal(showback.groups[0]!.measured.cpuSeconds, 4 * 720);
    });
  });
}
