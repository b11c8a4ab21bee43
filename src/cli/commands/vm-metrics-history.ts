/** zenith vms metrics VM --history: the VM's metrics over time, one line per step. */
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printTable } from '../output.js';
import type { MetricPoint } from '../../api/metrics.js';
import { instant } from './parse-instant.js';

export interface HistoryOptions {
  from?: string;
  to?: string;
  step?: string;
}

export async function printMetricsHistory(
  globals: { json?: boolean; server?: string },
  vm: string,
  options: HistoryOptions,
): Promise<void> {
  const to = options.to ? instant(options.to, '--to') : Date.now();
  const from = options.from ? instant(options.from, '--from') : to - 3_600_000;
  const step = options.step ?? '60';
  if (!/^\d+$/.test(step))
    throw new ZenithError('ZEN_BAD_REQUEST', `--step '${step}' is not a whole number of seconds`);
  const params = new URLSearchParams({ from: String(from), to: String(to), step });
  const history = await ApiClient.fromConfig(globals).get<{
    stepSeconds: number;
    points: MetricPoint[];
  }>(`/vms/${encodeURIComponent(vm)}/metrics/history?${params.toString()}`);
  if (globals.json) return printJson(history);
  const rate = (value: number | null) => (value === null ? '-' : `${formatBytes(value)}/s`);
  printTable(
    ['AT', 'CPU', 'MEMORY', 'DISK READ', 'DISK WRITE', 'NET IN', 'NET OUT'],
    history.points.map((p) => [
      formatTime(p.at),
      p.cpuPercent === null ? '-' : `${p.cpuPercent.toFixed(1)}%`,
      p.memoryUsedBytes === null ? '-' : formatBytes(p.memoryUsedBytes),
      rate(p.diskReadBytesPerSec),
      rate(p.diskWriteBytesPerSec),
      rate(p.netRxBytesPerSec),
      rate(p.netTxBytesPerSec),
    ]),
  );
}
