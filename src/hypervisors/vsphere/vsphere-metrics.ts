/**
 * VM metrics of the vsphere driver, from the PerformanceManager's realtime
 * statistics: one QueryPerf for a VM's aggregate counters (CPU time used,
 * memory consumed, disk and network traffic). vCenter keeps realtime samples
 * of 20 s for an hour; rates (KB/s) are turned into bytes per sample and
 * summed with the counts, so each counter is the VM's use over the samples
 * the server holds (since it started, for a VM up for less than an hour).
 * Counter ids differ between servers: they are looked up by name once per
 * connection (`group.name.rollup`, as vSphere documents them).
 */
import { ZenithError } from '../../core/errors.js';
import { PropertyCollector } from '../../protocols/vim/property-collector.js';
import type { VimClient } from '../../protocols/vim/vim-client.js';
import { list, num, obj, str, type MoRef, type VimValue } from '../../protocols/vim/vim-values.js';
import type { VmMetrics } from '../driver.js';

/** The realtime interval (seconds) and how many samples vCenter keeps of it (an hour). */
const realtimeInterval = 20;
const realtimeSamples = 180;

const counters = {
  cpuUsedMs: 'cpu.used.summation',
  memoryConsumedKb: 'mem.consumed.average',
  diskReadKbps: 'disk.read.average',
  diskWriteKbps: 'disk.write.average',
  diskReads: 'disk.numberRead.summation',
  diskWrites: 'disk.numberWrite.summation',
  netRxKbps: 'net.received.average',
  netTxKbps: 'net.transmitted.average',
} as const;

type CounterName = keyof typeof counters;

/** Counter name (`cpu.used.summation`) → the server's counter id, from PerformanceManager.perfCounter. */
export function counterIds(perfCounter: VimValue | undefined): Map<string, number> {
  const ids = new Map<string, number>();
  for (const item of list(perfCounter)) {
    const counter = obj(item);
    const key = num(counter?.key);
    const group = str(obj(counter?.groupInfo)?.key);
    const name = str(obj(counter?.nameInfo)?.key);
    const rollup = str(counter?.rollupType);
    if (key !== undefined && group && name && rollup) ids.set(`${group}.${name}.${rollup}`, key);
  }
  return ids;
}

export interface MetricSeries {
  /** Sample timestamps (ms since the epoch), in the server's order. */
  timestamps: number[];
  /** Counter id → its values, one per sample. */
  values: Map<number, number[]>;
}

/** Reads a QueryPerf answer (one PerfEntityMetric, normal format). */
export function decodeEntityMetric(value: VimValue | undefined): MetricSeries {
  const metric = obj(list(value)[0]);
  const timestamps = list(metric?.sampleInfo).map((s) => Date.parse(str(obj(s)?.timestamp) ?? ''));
  const values = new Map<number, number[]>();
  for (const item of list(metric?.value)) {
    const series = obj(item);
    const id = num(obj(series?.id)?.counterId);
    if (id === undefined) continue;
    values.set(
      id,
      list(series?.value).map((v) => num(v) ?? 0),
    );
  }
  return { timestamps, values };
}

/** Maps a VM's realtime series onto Zenith's counters. */
export function toVmMetrics(
  series: MetricSeries,
  ids: Map<string, number>,
  memoryConfiguredBytes: number,
  now: number,
): VmMetrics {
  const valuesOf = (name: CounterName) => {
    const id = ids.get(counters[name]);
    return id === undefined ? [] : (series.values.get(id) ?? []);
  };
  const sum = (name: CounterName) => valuesOf(name).reduce((a, b) => a + b, 0);
  // KB/s averaged over a sample → bytes in that sample (KB are 1,024 bytes in vSphere's units).
  const bytes = (name: CounterName) => sum(name) * realtimeInterval * 1024;
  // The newest sample is the one with the latest timestamp (the simulator answers newest first).
  let newest = -1;
  series.timestamps.forEach((t, i) => {
    if (newest < 0 || t > series.timestamps[newest]!) newest = i;
  });
  const consumed = valuesOf('memoryConsumedKb')[newest];
  const hasNet = ids.has(counters.netRxKbps) && series.values.has(ids.get(counters.netRxKbps)!);
  return {
    sampledAt:
      newest >= 0 && Number.isFinite(series.timestamps[newest]) ? series.timestamps[newest]! : now,
    cpuTimeMs: sum('cpuUsedMs'),
    memoryUsedBytes: (consumed ?? 0) * 1024,
    memoryConfiguredBytes,
    diskReadBytes: bytes('diskReadKbps'),
    diskWriteBytes: bytes('diskWriteKbps'),
    diskReadOps: sum('diskReads'),
    diskWriteOps: sum('diskWrites'),
    netRxBytes: hasNet ? bytes('netRxKbps') : null,
    netTxBytes: hasNet ? bytes('netTxKbps') : null,
  };
}

/** Counter ids of one connection, read once. */
export class PerfCounters {
  #ids: Promise<Map<string, number>> | undefined;

  constructor(private readonly client: VimClient) {}

  ids(): Promise<Map<string, number>> {
    this.#ids ??= this.#read().catch((error: unknown) => {
      this.#ids = undefined;
      throw error;
    });
    return this.#ids;
  }

  async #read(): Promise<Map<string, number>> {
    const manager = this.perfManager;
    const props = await new PropertyCollector(this.client).retrieveOne(manager, ['perfCounter']);
    return counterIds(props?.get('perfCounter'));
  }

  get perfManager(): MoRef {
    const manager = this.client.content.perfManager;
    if (!manager)
      throw new ZenithError('ZEN_UNSUPPORTED', 'this vSphere server has no PerformanceManager');
    return manager;
  }

  /** The VM's realtime series of the counters Zenith maps (those the server has). */
  async query(vm: MoRef): Promise<MetricSeries> {
    const ids = await this.ids();
    const metricId = Object.values(counters)
      .map((name) => ids.get(name))
      .filter((id): id is number => id !== undefined)
      .map((counterId) => ({ counterId, instance: '' }));
    const answer = await this.client.invoke('QueryPerf', this.perfManager, {
      querySpec: [
        {
          entity: vm,
          maxSample: realtimeSamples,
          metricId,
          intervalId: realtimeInterval,
          format: 'normal',
        },
      ],
    });
    return decodeEntityMetric(answer);
  }
}
