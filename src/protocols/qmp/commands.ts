/**
 * Typed arguments and results of the QMP commands a driver needs, as QEMU 7.2
 * defines them (qapi/*.json). Results are QEMU's own JSON, typed but not
 * re-validated: QEMU is the authority on its schema. Optional members are the
 * ones QEMU may leave out.
 */

import type { JsonObject } from './messages.js';

/** qapi/run-state.json RunState. */
export type QmpRunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

export interface QmpStatusInfo {
  running: boolean;
  status: QmpRunState;
  singlestep?: boolean;
}

export interface QmpVersionInfo {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpCpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  'thread-id': number;
  target: string;
  props?: {
    'node-id'?: number;
    'socket-id'?: number;
    'die-id'?: number;
    'cluster-id'?: number;
    'core-id'?: number;
    'thread-id'?: number;
  };
}

export interface QmpImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'dirty-flag'?: boolean;
  'backing-filename'?: string;
  /** The image under this one as QEMU has it open (not in a `flat` answer). */
  'backing-image'?: QmpImageInfo;
  /** Internal snapshots the image holds (qcow2). */
  snapshots?: QmpSnapshotInfo[];
}

/** qapi/block-core.json SnapshotInfo: one internal snapshot of an image. */
export interface QmpSnapshotInfo {
  id: string;
  name: string;
  'vm-state-size': number;
  'date-sec': number;
  'date-nsec': number;
  'vm-clock-sec': number;
  'vm-clock-nsec': number;
}

export interface QmpBlockDeviceInfo {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  backing_file?: string;
  encrypted: boolean;
  detect_zeroes: string;
  bps: number;
  bps_rd: number;
  bps_wr: number;
  iops: number;
  iops_rd: number;
  iops_wr: number;
  image: QmpImageInfo;
  write_threshold: number;
  'dirty-bitmaps'?: QmpDirtyBitmapInfo[];
  cache: { writeback: boolean; direct: boolean; 'no-flush': boolean };
}

/** qapi/block-core.json BlockDirtyInfo. */
export interface QmpDirtyBitmapInfo {
  name?: string;
  count: number;
  granularity: number;
  recording: boolean;
  busy: boolean;
  persistent: boolean;
  /** Set when QEMU found it not cleanly saved (a crash): it cannot be trusted nor used. */
  inconsistent?: boolean;
}

/** One action of a `transaction` (qapi/transaction.json), as used here. */
export type QmpTransactionAction =
  | {
      type: 'block-dirty-bitmap-add';
      data: { node: string; name: string; persistent?: boolean; disabled?: boolean };
    }
  | {
      type: 'block-dirty-bitmap-merge';
      data: { node: string; target: string; bitmaps: string[] };
    }
  | {
      type: 'blockdev-backup';
      data: { device: string; target: string; sync: 'none' | 'full'; 'job-id'?: string };
    };

export interface QmpBlockInfo {
  device: string;
  qdev?: string;
  type: string;
  removable: boolean;
  locked: boolean;
  inserted?: QmpBlockDeviceInfo;
  tray_open?: boolean;
  'io-status'?: 'ok' | 'failed' | 'nospace';
}

export interface QmpBlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
  wr_highest_offset: number;
  idle_time_ns?: number;
  [more: string]: unknown;
}

export interface QmpBlockStats {
  device?: string;
  qdev?: string;
  'node-name'?: string;
  stats: QmpBlockDeviceStats;
  parent?: QmpBlockStats;
  backing?: QmpBlockStats;
}

/** qapi/migration.json MigrationStatus. */
export type QmpMigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug';

export interface QmpMigrationRamStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  skipped: number;
  normal: number;
  'normal-bytes': number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests': number;
  'page-size': number;
  'multifd-bytes': number;
  'pages-per-second': number;
  'precopy-bytes'?: number;
  'downtime-bytes'?: number;
  'postcopy-bytes'?: number;
}

export interface QmpMigrationInfo {
  status?: QmpMigrationStatus;
  ram?: QmpMigrationRamStats;
  'total-time'?: number;
  'expected-downtime'?: number;
  /** Milliseconds the guest was paused for the switch-over (set once completed). */
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  'blocked-reasons'?: string[];
}

export interface QmpMigrationCapability {
  capability: string;
  state: boolean;
}

/** The migration parameters most drivers set; QEMU has more, passed through as-is. */
export interface QmpMigrateSetParameters {
  'max-bandwidth'?: number;
  'downtime-limit'?: number;
  'multifd-channels'?: number;
  'x-checkpoint-delay'?: number;
  'compress-level'?: number;
  'max-postcopy-bandwidth'?: number;
  'announce-initial'?: number;
  [more: string]: number | boolean | string | undefined;
}

/** qapi/job.json JobStatus. */
export type QmpJobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

export interface QmpBlockJobInfo {
  type: string;
  device: string;
  len: number;
  offset: number;
  busy: boolean;
  paused: boolean;
  speed: number;
  'io-status': 'ok' | 'failed' | 'nospace';
  ready: boolean;
  status: QmpJobStatus;
  'auto-finalize': boolean;
  'auto-dismiss': boolean;
  error?: string;
}

/** qapi/job.json JobType (the ones a driver starts). */
export type QmpJobType =
  | 'commit'
  | 'stream'
  | 'mirror'
  | 'backup'
  | 'create'
  | 'amend'
  | 'snapshot-load'
  | 'snapshot-save'
  | 'snapshot-delete';

/** qapi/job.json JobInfo, as `query-jobs` answers it. */
export interface QmpJobInfo {
  id: string;
  type: QmpJobType;
  status: QmpJobStatus;
  'current-progress': number;
  'total-progress': number;
  /** QEMU's message when the job failed (set once it concluded). */
  error?: string;
}

/** qapi/migration.json snapshot-save / snapshot-load: internal snapshots in qcow2 images. */
export interface QmpSnapshotJobArgs {
  'job-id': string;
  /** The snapshot's name in every image. */
  tag: string;
  /** Node name of the image that holds (or receives) the VM state. */
  vmstate: string;
  /** Node names of every image in the snapshot. */
  devices: string[];
}

export type QmpMirrorSync = 'top' | 'full' | 'none' | 'incremental' | 'bitmap';

interface QmpMirrorCommon {
  'job-id'?: string;
  device: string;
  target: string;
  sync: QmpMirrorSync;
  replaces?: string;
  speed?: number;
  granularity?: number;
  'buf-size'?: number;
  'on-source-error'?: 'report' | 'ignore' | 'enospc' | 'stop' | 'auto';
  'on-target-error'?: 'report' | 'ignore' | 'enospc' | 'stop' | 'auto';
  'copy-mode'?: 'background' | 'write-blocking';
  'auto-finalize'?: boolean;
  'auto-dismiss'?: boolean;
}

export interface QmpDriveMirrorArgs extends QmpMirrorCommon {
  format?: string;
  'node-name'?: string;
  mode?: 'existing' | 'absolute-paths';
  unmap?: boolean;
}

export type QmpBlockdevMirrorArgs = QmpMirrorCommon & { 'filter-node-name'?: string };

/** qapi/block-export.json BlockExportInfo. */
export interface QmpBlockExportInfo {
  id: string;
  type: string;
  'node-name': string;
  'shutting-down': boolean;
}

type NoArgs = Record<string, never>;
type Empty = Record<string, never>;

/** Command name → its arguments and its result. */
export interface QmpCommands {
  qmp_capabilities: { args: { enable?: string[] }; result: Empty };
  'query-status': { args: NoArgs; result: QmpStatusInfo };
  'query-version': { args: NoArgs; result: QmpVersionInfo };
  'query-cpus-fast': { args: NoArgs; result: QmpCpuInfoFast[] };
  'query-block': { args: NoArgs; result: QmpBlockInfo[] };
  'query-blockstats': { args: { 'query-nodes'?: boolean }; result: QmpBlockStats[] };
  'query-migrate': { args: NoArgs; result: QmpMigrationInfo };
  'query-migrate-capabilities': { args: NoArgs; result: QmpMigrationCapability[] };
  'query-migrate-parameters': { args: NoArgs; result: JsonObject };
  migrate: {
    args: { uri: string; blk?: boolean; inc?: boolean; detach?: boolean; resume?: boolean };
    result: Empty;
  };
  'migrate-incoming': { args: { uri: string }; result: Empty };
  'migrate-set-capabilities': { args: { capabilities: QmpMigrationCapability[] }; result: Empty };
  'migrate-set-parameters': { args: QmpMigrateSetParameters; result: Empty };
  migrate_cancel: { args: NoArgs; result: Empty };
  stop: { args: NoArgs; result: Empty };
  cont: { args: NoArgs; result: Empty };
  system_powerdown: { args: NoArgs; result: Empty };
  system_reset: { args: NoArgs; result: Empty };
  quit: { args: NoArgs; result: Empty };
  'human-monitor-command': {
    args: { 'command-line': string; 'cpu-index'?: number };
    result: string;
  };
  'drive-mirror': { args: QmpDriveMirrorArgs; result: Empty };
  'blockdev-mirror': { args: QmpBlockdevMirrorArgs; result: Empty };
  'block-job-cancel': { args: { device: string; force?: boolean }; result: Empty };
  transaction: { args: { actions: QmpTransactionAction[] }; result: Empty };
  'blockdev-add': { args: JsonObject; result: Empty };
  'blockdev-del': { args: { 'node-name': string }; result: Empty };
  'block-dirty-bitmap-remove': { args: { node: string; name: string }; result: Empty };
  'nbd-server-start': { args: { addr: { type: 'unix'; data: { path: string } } }; result: Empty };
  'nbd-server-stop': { args: NoArgs; result: Empty };
  'block-export-add': {
    args: {
      type: 'nbd';
      id: string;
      'node-name': string;
      name: string;
      writable?: boolean;
      bitmaps?: string[];
    };
    result: Empty;
  };
  'block-export-del': { args: { id: string; mode?: 'safe' | 'hard' }; result: Empty };
  'block-job-complete': { args: { device: string }; result: Empty };
  'query-block-jobs': { args: NoArgs; result: QmpBlockJobInfo[] };
  'query-jobs': { args: NoArgs; result: QmpJobInfo[] };
  'job-dismiss': { args: { id: string }; result: Empty };
  'snapshot-save': { args: QmpSnapshotJobArgs; result: Empty };
  'snapshot-load': { args: QmpSnapshotJobArgs; result: Empty };
  'snapshot-delete': {
    args: { 'job-id': string; tag: string; devices: string[] };
    result: Empty;
  };
  /** qapi/qom.json: an object such as `tls-creds-psk` (its properties sit beside qom-type and id). */
  'object-add': { args: { 'qom-type': string; id: string } & JsonObject; result: Empty };
  'object-del': { args: { id: string }; result: Empty };
  /** qapi/block-core.json: `overlay` (added with `backing: null`) goes on top of `node`, taking its parents. */
  'blockdev-snapshot': { args: { node: string; overlay: string }; result: Empty };
  /**
   * qapi/block-core.json: `top-node`'s data written into `base-node` (below it, in the chain of the
   * root node `device`); an intermediate commit ends by itself, and the image above `top-node`
   * then reads through `base-node` (QEMU rewrites its header's backing file).
   */
  'block-commit': {
    args: {
      'job-id': string;
      device: string;
      'top-node': string;
      'base-node': string;
      'auto-dismiss'?: boolean;
      speed?: number;
    };
    result: Empty;
  };
  'query-block-exports': { args: NoArgs; result: QmpBlockExportInfo[] };
  'query-named-block-nodes': { args: { flat?: boolean }; result: QmpBlockDeviceInfo[] };
  /** qapi/block.json: latency histograms of a device's requests, boundaries in nanoseconds. */
  'block-latency-histogram-set': {
    args: {
      id: string;
      boundaries?: number[];
      'boundaries-read'?: number[];
      'boundaries-write'?: number[];
      'boundaries-flush'?: number[];
    };
    result: Empty;
  };
}

export type QmpCommandName = keyof QmpCommands;
export type QmpArgs<K extends QmpCommandName> = QmpCommands[K]['args'];
export type QmpResult<K extends QmpCommandName> = QmpCommands[K]['result'];
