/**
 * What a VM's disk writes cost, as QEMU counts them at the guest's device: the means from
 * `query-blockstats` (total time over operations, compared between two readings) and a latency
 * histogram (`block-latency-histogram-set`). What synchronous replication's cost is measured with
 * (bench/sync-mirror.ts), and what a caller can watch while a mirror runs.
 */
import { ZenithError } from '../../core/errors.js';
import type { QemuVm } from './qemu-vm.js';

/** What the guest's writes to a disk cost, as QEMU counts them at the device (qapi BlockDeviceStats). */
export interface DiskWriteLatency {
  writeOperations: number;
  writeTotalNs: number;
  /** Flushes (a guest's fsync): the mirror sends none to the target, only writes. */
  flushOperations: number;
  flushTotalNs: number;
  /** Writes per latency bin since `trackWriteLatency`: bin i counts those under boundariesNs[i] (and over the one before). */
  histogram: { boundariesNs: number[]; bins: number[] } | null;
}

/**
 * Starts (or restarts, from zero) the device's write latency histogram with these bin
 * boundaries in nanoseconds (QMP `block-latency-histogram-set`).
 */
export async function trackWriteLatency(
  vm: QemuVm,
  diskId: string,
  boundariesNs: number[],
): Promise<void> {
  const qmp = vm.qmp();
  const block = (await qmp.execute('query-block')).find((b) => b.device === diskId);
  if (!block?.qdev)
    throw new ZenithError('ZEN_NOT_FOUND', `${vm.record.spec.name} has no disk ${diskId}`, {
      diskId,
    });
  await qmp.execute('block-latency-histogram-set', {
    id: block.qdev,
    'boundaries-write': boundariesNs,
  });
}

/** The device's write counters now: compare two readings for a window's average. */
export async function diskWriteLatency(vm: QemuVm, diskId: string): Promise<DiskWriteLatency> {
  const entry = (await vm.qmp().execute('query-blockstats')).find((b) => b.device === diskId);
  if (!entry)
    throw new ZenithError('ZEN_NOT_FOUND', `${vm.record.spec.name} has no disk ${diskId}`, {
      diskId,
    });
  const histogram = entry.stats.wr_latency_histogram as
    { boundaries: number[]; bins: number[] } | undefined;
  return {
    writeOperations: entry.stats.wr_operations,
    writeTotalNs: entry.stats.wr_total_time_ns,
    flushOperations: entry.stats.flush_operations,
    flushTotalNs: entry.stats.flush_total_time_ns,
    histogram: histogram ? { boundariesNs: histogram.boundaries, bins: histogram.bins } : null,
  };
}
