/** A VM's metrics: its counters as last measured, and rates over time as chart points. */
import { Type, type Static } from 'typebox';
import { HistoryQuery, IdParams } from './common.js';
import { operation } from './operation.js';

const rate = Type.Union([Type.Number(), Type.Null()]);

export const VmMetrics = Type.Object({
  sampledAt: Type.Number(),
  cpuTimeMs: Type.Number(),
  memoryUsedBytes: Type.Number(),
  memoryConfiguredBytes: Type.Number(),
  diskReadBytes: Type.Number(),
  diskWriteBytes: Type.Number(),
  diskReadOps: Type.Number(),
  diskWriteOps: Type.Number(),
  netRxBytes: Type.Union([Type.Number(), Type.Null()]),
  netTxBytes: Type.Union([Type.Number(), Type.Null()]),
});
export type VmMetrics = Static<typeof VmMetrics>;

/** One chart point: the start of its step and rates per second, null where nothing was measured. */
export const MetricPoint = Type.Object({
  /** Start of the step, ms since the epoch. */
  at: Type.Number(),
  /** CPU time used per wall time, in percent of one host CPU (a busy 2-vCPU VM can show 200). */
  cpuPercent: rate,
  memoryUsedBytes: rate,
  diskReadBytesPerSec: rate,
  diskWriteBytesPerSec: rate,
  netRxBytesPerSec: rate,
  netTxBytesPerSec: rate,
});
export type MetricPoint = Static<typeof MetricPoint>;

export const MetricsHistory = Type.Object({
  vmId: Type.String(),
  stepSeconds: Type.Integer(),
  points: Type.Array(MetricPoint),
});
export type MetricsHistory = Static<typeof MetricsHistory>;

export const vmMetrics = operation({
  method: 'GET',
  path: '/vms/:id/metrics',
  auth: 'inventory.read',
  tag: 'inventory',
  summary:
    'Counters of a running VM (CPU time, memory, disk and network bytes), as its host last measured them; null when it is not running',
  params: IdParams,
  success: {
    200: Type.Object({ vmId: Type.String(), metrics: Type.Union([VmMetrics, Type.Null()]) }),
  },
  errors: [409, 422, 502],
});

export const vmMetricsHistory = operation({
  method: 'GET',
  path: '/vms/:id/metrics/history',
  auth: 'inventory.read',
  tag: 'inventory',
  summary:
    'Metrics of a VM over time: one point per step (start of the step, ms since the epoch), rates per second, null where nothing was measured',
  params: IdParams,
  query: HistoryQuery,
  success: { 200: MetricsHistory },
});
