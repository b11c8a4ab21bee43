/**
 * High availability: the state of each protected host as the failure detector sees it, each VM's
 * protection, and every failover with each VM's restart (docs/high-availability.md).
 */
import { Type, type Static } from 'typebox';
import { IdParams, Items, StringEnum } from './common.js';
import { operation } from './operation.js';

const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

export const haHostStates = [
  'healthy',
  'suspect',
  'isolated',
  'failed',
  'unprotected',
  'vsphere-ha',
] as const;
export const haVmStates = [
  'protected',
  'unprotected',
  'restarting',
  'waiting',
  'vsphere-ha',
  'monitoring-limit',
] as const;
export const failoverStates = ['fencing', 'restarting', 'waiting', 'done', 'failed'] as const;
export const restartStates = [
  'pending',
  'starting',
  'running',
  'waiting',
  'failed',
  'skipped',
] as const;

export const HaHostView = Type.Object({
  hostId: Type.String(),
  name: Type.String(),
  /** HA is enabled where the host is (its cluster's, datacenter's or the global policies). */
  enabled: Type.Boolean(),
  /**
   * healthy; suspect: its channel is silent, not yet for the detection time; isolated: channel
   * silent, storage heartbeat alive (nothing restarts); failed: both stopped (its VMs fail over);
   * unprotected: HA off there, or a host HA cannot watch; vsphere-ha: a host of a vSphere cluster
   * whose vSphere HA is on (vSphere watches it and restarts its VMs; Zenith does not).
   */
  state: StringEnum(haHostStates),
  /** Since when it is in that state (ms since the epoch), when not healthy. */
  since: NullableNumber,
  /** How long its channel has been silent, in ms (null: no channel). */
  silentMs: NullableNumber,
  /**
   * How a failure is made safe before its VMs restart: its BMC, or its lease and self-fencing;
   * vsphere-ha: vSphere HA's own (its isolation response and datastore heartbeats), not Zenith's.
   */
  fencing: StringEnum(['bmc', 'self-fence', 'vsphere-ha', 'none']),
  /** Its storage heartbeat as last read, when it writes one. */
  storage: Type.Union([
    Type.Object({ counter: Type.Number(), writtenAt: Type.Number(), readAt: Type.Number() }),
    Type.Null(),
  ]),
  reason: Type.Optional(Type.String()),
  /** A vSphere host: its state as vSphere HA reports it (null: HA not configured on it). */
  vsphereState: Type.Optional(NullableString),
});
export type HaHostView = Static<typeof HaHostView>;

export const HaVmView = Type.Object({
  vmId: Type.String(),
  name: Type.String(),
  hostId: NullableString,
  /**
   * protected, unprotected, restarting or waiting (a failover's); monitoring-limit: its QEMU died
   * or its guest panicked after VM monitoring had restarted it maxRestarts times in the window, so
   * it stays off; vsphere-ha: on a host of a vSphere cluster whose vSphere HA is on (vSphere
   * restarts it).
   */
  state: StringEnum(haVmStates),
  /** Why it is unprotected, waiting or left off; who protects it when vSphere HA does. */
  reason: NullableString,
  /** Zenith's priority, or vSphere HA's (its own override, else its cluster's default) for vsphere-ha. */
  priority: Type.String(),
  restartOrder: Type.Number(),
  /** When its portable description (what a restart runs) was last taken. */
  describedAt: NullableNumber,
});
export type HaVmView = Static<typeof HaVmView>;

export const RestartView = Type.Object({
  vmId: Type.String(),
  vmName: Type.String(),
  priority: Type.String(),
  restartOrder: Type.Number(),
  state: StringEnum(restartStates),
  toHostId: NullableString,
  toHostName: NullableString,
  reason: NullableString,
  attempts: Type.Number(),
  startedAt: NullableNumber,
  runningAt: NullableNumber,
});
export type RestartView = Static<typeof RestartView>;

export const FailoverView = Type.Object({
  id: Type.String(),
  hostId: Type.String(),
  hostName: Type.String(),
  state: StringEnum(failoverStates),
  /** When the host stopped answering. */
  failedAt: Type.Number(),
  detectedAt: Type.Number(),
  fenceMethod: NullableString,
  fencedAt: NullableNumber,
  taskId: NullableString,
  error: NullableString,
  updatedAt: Type.Number(),
  finishedAt: NullableNumber,
  /** In start order: priority, then order group. */
  restarts: Type.Array(RestartView),
});
export type FailoverView = Static<typeof FailoverView>;

/** A vSphere cluster's HA as vSphere shows it (read from vCenter; Zenith does not act on it). */
export const VsphereHaClusterView = Type.Object({
  clusterId: Type.String(),
  name: Type.String(),
  enabled: Type.Boolean(),
  /** enabled or disabled: whether vSphere HA restarts the VMs of a failed host. */
  hostMonitoring: NullableString,
  /** vmMonitoringDisabled, vmMonitoringOnly, vmAndAppMonitoring. */
  vmMonitoring: NullableString,
  admissionControl: Type.Object({
    enabled: Type.Boolean(),
    /** hostFailures, resourcePercentage, failoverHosts (null: none set). */
    policy: NullableString,
    hostFailuresToTolerate: NullableNumber,
    cpuFailoverPercent: NullableNumber,
    memoryFailoverPercent: NullableNumber,
    failoverHosts: Type.Array(Type.String()),
  }),
  /** The cluster's default restart priority and isolation response. */
  restartPriority: NullableString,
  isolationResponse: NullableString,
  /** Its hosts the caller can read, each with its state as vSphere HA reports it. */
  hosts: Type.Array(
    Type.Object({ hostId: Type.String(), name: Type.String(), state: NullableString }),
  ),
});
export type VsphereHaClusterView = Static<typeof VsphereHaClusterView>;

export const haStatus = operation({
  method: 'GET',
  path: '/ha',
  auth: 'inventory.read',
  tag: 'ha',
  summary:
    'High availability now: every host the caller can read with its failure-detection state and fencing method, how many VMs are protected, unprotected, restarting, waiting, protected by vSphere HA or at VM monitoring’s restart limit, and each vSphere cluster with its vSphere HA settings and host states',
  success: {
    200: Type.Object({
      hosts: Type.Array(HaHostView),
      vms: Type.Object({
        protected: Type.Number(),
        unprotected: Type.Number(),
        restarting: Type.Number(),
        waiting: Type.Number(),
        /** On hosts of vSphere clusters whose vSphere HA is on. */
        vsphereHa: Type.Number(),
        /** Stopped by a crash VM monitoring no longer restarts: its restarts reached the policy's limit. */
        monitoringLimit: Type.Number(),
      }),
      /** The vSphere clusters the caller can read: vSphere HA's settings and host states. */
      vsphereClusters: Type.Array(VsphereHaClusterView),
    }),
  },
});

export const listHaVms = operation({
  method: 'GET',
  path: '/ha/vms',
  auth: 'inventory.read',
  tag: 'ha',
  summary: "Each VM's protection: protected, unprotected (and why), restarting, waiting (and why)",
  query: Type.Object(
    { state: Type.Optional(StringEnum(haVmStates)) },
    { additionalProperties: false },
  ),
  success: { 200: Items(HaVmView) },
});

export const getHaVm = operation({
  method: 'GET',
  path: '/ha/vms/:id',
  auth: 'inventory.read',
  tag: 'ha',
  summary: "One VM's protection (by id or name)",
  params: IdParams,
  success: { 200: HaVmView },
  errors: [404],
});

export const listFailovers = operation({
  method: 'GET',
  path: '/ha/failovers',
  auth: 'inventory.read',
  tag: 'ha',
  summary: 'Failovers, newest first, each with its VMs’ restarts',
  query: Type.Object(
    { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })) },
    { additionalProperties: false },
  ),
  success: { 200: Items(FailoverView) },
});

export const getFailover = operation({
  method: 'GET',
  path: '/ha/failovers/:id',
  auth: 'inventory.read',
  tag: 'ha',
  summary: 'One failover: fencing, then each VM’s restart in order, with where it went and when',
  params: IdParams,
  success: { 200: FailoverView },
  errors: [404],
});
