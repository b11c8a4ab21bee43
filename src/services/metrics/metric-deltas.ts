/**
 * Counters to differences, pure. A VM's counters (CPU time, disk and network
 * bytes) only grow while its process lives; when one is lower than in the
 * previous sample the VM was restarted and the counter began again at zero,
 * so the difference is the new value (as Prometheus's rate() does), never
 * negative.
 */
import type { VmMetrics } from '../../hypervisors/driver.js';
import type { MetricSums } from '../../store/schema.js';

export type MetricDelta = Omit<MetricSums, 'vm_id'> & { at: number };

function grown(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/** The difference between two samples of one VM (previous undefined: the first, which has no span). */
export function metricDelta(previous: VmMetrics | undefined, current: VmMetrics): MetricDelta {
  const span = previous ? Math.max(0, current.sampledAt - previous.sampledAt) : 0;
  const counted = span > 0 && previous !== undefined;
  const net =
    counted &&
    previous.netRxBytes !== null &&
    previous.netTxBytes !== null &&
    current.netRxBytes !== null &&
    current.netTxBytes !== null;
  return {
    at: current.sampledAt,
    span_ms: counted ? span : 0,
    cpu_ms: counted ? Math.round(grown(previous.cpuTimeMs, current.cpuTimeMs)) : 0,
    disk_read_bytes: counted ? grown(previous.diskReadBytes, current.diskReadBytes) : 0,
    disk_write_bytes: counted ? grown(previous.diskWriteBytes, current.diskWriteBytes) : 0,
    net_span_ms: net ? span : 0,
    net_rx_bytes: net ? grown(previous.netRxBytes!, current.netRxBytes!) : 0,
    net_tx_bytes: net ? grown(previous.netTxBytes!, current.netTxBytes!) : 0,
    memory_sum_bytes: Math.round(current.memoryUsedBytes),
    memory_samples: 1,
  };
}

/** Adds b's sums into a (the time column of a is kept). */
export function addSums(a: Omit<MetricSums, 'vm_id'>, b: Omit<MetricSums, 'vm_id'>): void {
  a.span_ms += b.span_ms;
  a.cpu_ms += b.cpu_ms;
  a.disk_read_bytes += b.disk_read_bytes;
  a.disk_write_bytes += b.disk_write_bytes;
  a.net_span_ms += b.net_span_ms;
  a.net_rx_bytes += b.net_rx_bytes;
  a.net_tx_bytes += b.net_tx_bytes;
  a.memory_sum_bytes += b.memory_sum_bytes;
  a.memory_samples += b.memory_samples;
}

export interface MetricPoint {
  /** Start of the step, ms since the epoch. */
  at: number;
  /** CPU time used per wall time, in percent of one host CPU (a busy 2-vCPU VM can show 200). */
  cpuPercent: number | null;
  memoryUsedBytes: number | null;
  diskReadBytesPerSec: number | null;
  diskWriteBytesPerSec: number | null;
  netRxBytesPerSec: number | null;
  netTxBytesPerSec: number | null;
}

/** One chart point from the sums of a step. */
export function pointOf(at: number, sums: Omit<MetricSums, 'vm_id'> | undefined): MetricPoint {
  const span = sums?.span_ms ?? 0;
  const netSpan = sums?.net_span_ms ?? 0;
  const perSecond = (bytes: number, ms: number) => (ms > 0 ? (bytes * 1000) / ms : null);
  return {
    at,
    cpuPercent: sums && span > 0 ? (sums.cpu_ms * 100) / span : null,
    memoryUsedBytes:
      sums && sums.memory_samples > 0
        ? Math.round(sums.memory_sum_bytes / sums.memory_samples)
        : null,
    diskReadBytesPerSec: perSecond(sums?.disk_read_bytes ?? 0, span),
    diskWriteBytesPerSec: perSecond(sums?.disk_write_bytes ?? 0, span),
    netRxBytesPerSec: perSecond(sums?.net_rx_bytes ?? 0, netSpan),
    netTxBytesPerSec: perSecond(sums?.net_tx_bytes ?? 0, netSpan),
  };
}
