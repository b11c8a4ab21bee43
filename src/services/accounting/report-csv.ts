/** A report as CSV (RFC 4180): one line per row, money as decimal text in the card's currency. */
import type { Report } from './accounting-service.js';
import { formatMinor } from './money.js';

const header = [
  'bucket_start',
  'bucket_end',
  'group_by',
  'key',
  'label',
  'vms',
  'running_hours',
  'suspended_hours',
  'stopped_hours',
  'vcpu_hours',
  'memory_gib_hours',
  'disk_gib_hours',
  'currency',
  'vcpu_cost',
  'memory_cost',
  'disk_cost',
  'fixed_cost',
  'discount',
  'total',
  'rate_card_versions',
  'measured_cpu_seconds',
  'measured_disk_read_bytes',
  'measured_disk_write_bytes',
  'measured_net_rx_bytes',
  'measured_net_tx_bytes',
];

function field(value: string | number): string {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const hours = (ms: number, perHour = 1): string => (ms / 3_600_000 / perHour).toFixed(6);

export function reportCsv(report: Report): string {
  const money = (minor: number) => formatMinor(minor, report.minorDigits);
  const versions = report.rateCards.map((c) => c.version).join(' ');
  const lines = [header.join(',')];
  for (const row of report.rows)
    lines.push(
      [
        new Date(row.bucketStart).toISOString(),
        new Date(row.bucketEnd).toISOString(),
        report.groupBy,
        row.key,
        row.label,
        row.vms,
        hours(row.runningMs),
        hours(row.suspendedMs),
        hours(row.stoppedMs),
        hours(row.vcpuMs),
        hours(row.memoryMiBMs, 1024),
        hours(row.diskMiBMs, 1024),
        report.currency ?? '',
        money(row.cost.vcpu),
        money(row.cost.memory),
        money(row.cost.disk),
        money(row.cost.fixed),
        money(row.cost.discount),
        money(row.cost.total),
        versions,
        // Empty where nothing was measured (no metrics history for the VMs of the row).
        row.measured.cpuSeconds ?? '',
        row.measured.diskReadBytes ?? '',
        row.measured.diskWriteBytes ?? '',
        row.measured.netRxBytes ?? '',
        row.measured.netTxBytes ?? '',
      ]
        .map(field)
        .join(','),
    );
  return `${lines.join('\r\n')}\r\n`;
}
