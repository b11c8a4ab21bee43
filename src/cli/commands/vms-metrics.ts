/**
 * `zenith vms metrics VM`: a running VM's counters now; with --history, its metrics over time, one
 * line per step.
 */
import type { Command } from 'commander';
import { ZenithError } from '../../api/errors.js';
import { ApiClient } from '../client.js';
import { formatBytes, formatTime, printJson, printKeyValues, printTable } from '../output.js';
import type { MetricsHistory } from '../../api/metrics.js';
import { instant } from './parse-instant.js';
import type { Globals } from './object-views.js';

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
  const history = await ApiClient.fromConfig(globals).get<MetricsHistory>(
    `/vms/${encodeURIComponent(vm)}/metrics/history?${params.toString()}`,
  );
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

export function registerMetrics(vms: Command): void {
  vms
    .command('metrics <vm>')
    .description(
      'Counters of a running VM: CPU time, memory, disk and network bytes; --history: rates over time',
    )
    .option('--history', 'metrics over time, one line per step (default: the last hour)')
    .option('--from <time>', 'with --history: start (ISO 8601 or ms since the epoch)')
    .option('--to <time>', 'with --history: end (default: now)')
    .option('--step <seconds>', 'with --history: seconds per line', '60')
    .action(
      async (vm: string, options: HistoryOptions & { history?: boolean }, command: Command) => {
        const globals = command.optsWithGlobals<Globals>();
        if (options.history) return printMetricsHistory(globals, vm, options);
        const { metrics } = await ApiClient.fromConfig(globals).get<{
          metrics: Record<string, number | null> | null;
        }>(`/vms/${encodeURIComponent(vm)}/metrics`);
        if (globals.json) return printJson(metrics);
        if (!metrics) {
          console.log('not running: no metrics');
          return;
        }
        const orDash = (value: number | null | undefined, show: (n: number) => string) =>
          value === null || value === undefined ? '-' : show(value);
        printKeyValues([
          ['measured', formatTime(metrics.sampledAt)],
          ['cpu time', orDash(metrics.cpuTimeMs, (ms) => `${(ms / 1000).toFixed(1)} s`)],
          [
            'memory',
            `${formatBytes(metrics.memoryUsedBytes)} used of ${formatBytes(metrics.memoryConfiguredBytes)}`,
          ],
          [
            'disk read',
            `${formatBytes(metrics.diskReadBytes)} in ${metrics.diskReadOps} operations`,
          ],
          [
            'disk written',
            `${formatBytes(metrics.diskWriteBytes)} in ${metrics.diskWriteOps} operations`,
          ],
          ['network in', orDash(metrics.netRxBytes, formatBytes)],
          ['network out', orDash(metrics.netTxBytes, formatBytes)],
        ]);
      },
    );
}
