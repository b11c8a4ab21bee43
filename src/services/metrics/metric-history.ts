/**
 * Metrics history of VMs: samples come in (record), are written in batches
 * (flush: one transaction for every sample since the last flush, raw rows and
 * their 5-minute rollups together), expire (prune) and are read back as chart
 * points of any step (history). Raw samples answer recent periods; rollups
 * answer periods that reach beyond the raw retention.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { VmMetrics } from '../../hypervisors/driver.js';
import { sql } from 'kysely';
import type { Store } from '../../store/store.js';
import type { MetricSums } from '../../store/schema.js';
import { chartSteps } from './chart-steps.js';
import {
  addSums,
  metricDelta,
  pointOf,
  type MetricDelta,
  type MetricPoint,
} from './metric-deltas.js';

export interface MetricSettings {
  /** How often the sampler reads the counters of running VMs. */
  sampleEveryMs: number;
  /** How long raw samples are kept. */
  rawRetentionMs: number;
  /** How long 5-minute rollups are kept. */
  rollupRetentionMs: number;
}

export const defaultMetricSettings: MetricSettings = {
  sampleEveryMs: 15_000,
  rawRetentionMs: 24 * 3_600_000,
  rollupRetentionMs: 35 * 86_400_000,
};

export const rollupMs = 5 * 60_000;
export const maxPoints = 5_000;
/** Rows per INSERT statement (SQLite caps the bound parameters of one statement). */
const batchRows = 200;

type Sums = Omit<MetricSums, 'vm_id'>;
type Pending = MetricDelta & { vm_id: string };

export interface MetricHistoryView {
  vmId: string;
  stepSeconds: number;
  points: MetricPoint[];
}

export class MetricHistory {
  readonly #last = new Map<string, VmMetrics>();
  #pending: Pending[] = [];
  #flushing: Promise<number> = Promise.resolve(0);
  /** Longest time between two samples that still gives a rate (heartbeats may be slower than sampling). */
  readonly #maxGapMs: number;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly settings: MetricSettings = defaultMetricSettings,
  ) {
    this.#maxGapMs = Math.max(4 * settings.sampleEveryMs, 60_000);
  }

  /** Takes one sample of a VM; a sample no newer than the last one (an unchanged heartbeat) is ignored. */
  record(vmId: string, metrics: VmMetrics): boolean {
    const previous = this.#last.get(vmId);
    if (previous && metrics.sampledAt <= previous.sampledAt) return false;
    // After a long silence (VM stopped, agent away) the difference says nothing about a rate.
    const related =
      previous && metrics.sampledAt - previous.sampledAt <= this.#maxGapMs ? previous : undefined;
    this.#pending.push({ vm_id: vmId, ...metricDelta(related, metrics) });
    this.#last.set(vmId, metrics);
    return true;
  }

  get pendingSamples(): number {
    return this.#pending.length;
  }

  /** Writes every pending sample, and adds them to their rollups, in one transaction. */
  flush(): Promise<number> {
    this.#flushing = this.#flushing.then(
      () => this.#flush(),
      () => this.#flush(),
    );
    return this.#flushing;
  }

  async #flush(): Promise<number> {
    const samples = this.#pending;
    if (samples.length === 0) return 0;
    this.#pending = [];
    const rollups = new Map<string, MetricSums & { bucket_start: number }>();
    for (const sample of samples) {
      // A sample covers (at - span, at]: it belongs to the bucket its span ends in.
      const bucket = Math.floor((sample.at - 1) / rollupMs) * rollupMs;
      const key = `${sample.vm_id}/${bucket}`;
      const { at: _at, vm_id, ...sums } = sample;
      const rollup = rollups.get(key);
      if (rollup) addSums(rollup, sums);
      else rollups.set(key, { vm_id, bucket_start: bucket, ...sums });
    }
    const added = [...rollups.values()];
    try {
      await this.store.transaction(async (tx) => {
        for (let i = 0; i < samples.length; i += batchRows)
          await tx
            .insertInto('vm_metric_samples')
            .values(samples.slice(i, i + batchRows))
            .onConflict((oc) => oc.columns(['vm_id', 'at']).doNothing())
            .execute();
        for (let i = 0; i < added.length; i += batchRows)
          await tx
            .insertInto('vm_metric_rollups')
            .values(added.slice(i, i + batchRows))
            .onConflict((oc) =>
              oc.columns(['vm_id', 'bucket_start']).doUpdateSet({
                span_ms: sql`vm_metric_rollups.span_ms + excluded.span_ms`,
                cpu_ms: sql`vm_metric_rollups.cpu_ms + excluded.cpu_ms`,
                disk_read_bytes: sql`vm_metric_rollups.disk_read_bytes + excluded.disk_read_bytes`,
                disk_write_bytes: sql`vm_metric_rollups.disk_write_bytes + excluded.disk_write_bytes`,
                net_span_ms: sql`vm_metric_rollups.net_span_ms + excluded.net_span_ms`,
                net_rx_bytes: sql`vm_metric_rollups.net_rx_bytes + excluded.net_rx_bytes`,
                net_tx_bytes: sql`vm_metric_rollups.net_tx_bytes + excluded.net_tx_bytes`,
                memory_sum_bytes: sql`vm_metric_rollups.memory_sum_bytes + excluded.memory_sum_bytes`,
                memory_samples: sql`vm_metric_rollups.memory_samples + excluded.memory_samples`,
              }),
            )
            .execute();
      });
    } catch (error) {
      // Keep the samples for the next flush rather than lose them to a passing store error.
      this.#pending = samples.concat(this.#pending);
      throw error;
    }
    return samples.length;
  }

  /** Deletes raw samples and rollups older than their retention. */
  async prune(): Promise<{ samples: number; rollups: number }> {
    const now = this.clock.now();
    const samples = await this.store.db
      .deleteFrom('vm_metric_samples')
      .where('at', '<', now - this.settings.rawRetentionMs)
      .executeTakeFirst();
    const rollups = await this.store.db
      .deleteFrom('vm_metric_rollups')
      .where('bucket_start', '<', now - this.settings.rollupRetentionMs)
      .executeTakeFirst();
    return {
      samples: Number(samples.numDeletedRows),
      rollups: Number(rollups.numDeletedRows),
    };
  }

  /**
   * Chart points of one VM: one per step from `from` (rounded down to a whole step since the
   * epoch) to `to`, null where nothing was measured. A sample covers the time since the one
   * before it, (at - span, at], and counts in the step that time ends in.
   */
  async history(
    vmId: string,
    request: { from: number; to: number; stepSeconds: number },
  ): Promise<MetricHistoryView> {
    const { to, stepSeconds } = request;
    const { stepMs, first, count } = chartSteps(request, maxPoints, checkPeriod);
    const raw = first >= this.clock.now() - this.settings.rawRetentionMs;
    const rows: Array<Sums & { time: number }> = raw
      ? (
          await this.store.db
            .selectFrom('vm_metric_samples')
            .selectAll()
            .where('vm_id', '=', vmId)
            .where('at', '>', first)
            .where('at', '<=', to)
            .execute()
        ).map(({ vm_id: _v, at, ...sums }) => ({ time: Number(at) - 1, ...numbers(sums) }))
      : (
          await this.store.db
            .selectFrom('vm_metric_rollups')
            .selectAll()
            .where('vm_id', '=', vmId)
            .where('bucket_start', '>=', first)
            .where('bucket_start', '<', to)
            .execute()
        ).map(({ vm_id: _v, bucket_start, ...sums }) => ({ time: bucket_start, ...numbers(sums) }));
    const steps = new Map<number, Sums>();
    for (const { time, ...sums } of rows) {
      const step = Math.floor((Number(time) - first) / stepMs);
      const sum = steps.get(step);
      if (sum) addSums(sum, sums);
      else steps.set(step, sums);
    }
    const points: MetricPoint[] = [];
    for (let i = 0; i < count; i++) points.push(pointOf(first + i * stepMs, steps.get(i)));
    return { vmId, stepSeconds, points };
  }
}

/** PostgreSQL may hand back bigint columns as numbers already; SQLite always does. */
function numbers(sums: Sums): Sums {
  return {
    span_ms: Number(sums.span_ms),
    cpu_ms: Number(sums.cpu_ms),
    disk_read_bytes: Number(sums.disk_read_bytes),
    disk_write_bytes: Number(sums.disk_write_bytes),
    net_span_ms: Number(sums.net_span_ms),
    net_rx_bytes: Number(sums.net_rx_bytes),
    net_tx_bytes: Number(sums.net_tx_bytes),
    memory_sum_bytes: Number(sums.memory_sum_bytes),
    memory_samples: Number(sums.memory_samples),
  };
}

/** A period of whole milliseconds that ends after it starts. */
function checkPeriod(from: number, to: number): void {
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from < to))
    throw new ZenithError('ZEN_BAD_REQUEST', 'the period must end after it starts', { from, to });
}
