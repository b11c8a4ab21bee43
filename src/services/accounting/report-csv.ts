/** A report as CSV (RFC 4180): one line per row, money as decimal numbers in the card's currency. */
import { csvDecimal, toCsv } from '../../core/csv.js';
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

/**
 * The VMs' share of their machines' energy, and (grouped by host) what the host's machine drew in
 * the bucket, shared or not.
 */
const energyHeader = ['energy_kwh', 'energy_cost', 'machine_energy_kwh', 'machine_energy_cost'];

export const hours = (ms: number, perHour = 1): string => (ms / 3_600_000 / perHour).toFixed(6);

export function reportCsv(report: Report): string {
  // Amounts and hours are numbers (a discount is negative): written bare, not taken for formulas.
  const money = (minor: number) => csvDecimal(formatMinor(minor, report.minorDigits));
  const hoursOf = (ms: number, perHour = 1) => csvDecimal(hours(ms, perHour));
  const versions = report.rateCards.map((c) => c.version).join(' ');
  // Energy columns only when a card prices energy: other reports keep their columns.
  const energy = report.energy !== undefined;
  return toCsv(
    energy ? [...header, ...energyHeader] : header,
    report.rows.map((row) => [
      new Date(row.bucketStart).toISOString(),
      new Date(row.bucketEnd).toISOString(),
      report.groupBy,
      row.key,
      row.label,
      row.vms,
      hoursOf(row.runningMs),
      hoursOf(row.suspendedMs),
      hoursOf(row.stoppedMs),
      hoursOf(row.vcpuMs),
      hoursOf(row.memoryMiBMs, 1024),
      hoursOf(row.diskMiBMs, 1024),
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
      ...(energy
        ? [
            csvDecimal((row.energyKWh ?? 0).toFixed(6)),
            money(row.cost.energy ?? 0),
            row.machineEnergy ? csvDecimal(row.machineEnergy.kWh.toFixed(6)) : '',
            row.machineEnergy ? money(row.machineEnergy.cost) : '',
          ]
        : []),
    ]),
  );
}
