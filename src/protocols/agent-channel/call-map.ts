/**
 * Every call the control plane makes on an agent: its arguments (a tuple),
 * its result, and the protocol version that introduced it. Both ends are
 * typed from this map and validate against it: the agent checks arguments
 * before it dispatches, the control plane checks results before it believes
 * them.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { HaHeartbeat } from '../ha-heartbeat.js';
import { HaAgentSettings } from './ha-values.js';
import {
  DiskCheckpoint,
  ExtentPage,
  DiskReadOptions,
  NewDisk,
  OverlayMerge,
  OpenedReader,
  OpenedWriter,
  Piece,
  PieceBytes,
  StreamDisk,
} from './disk-stream-values.js';
import { Disk, Location, PortableVm, RunOptions } from './portable-values.js';
import {
  IncomingEndpoint,
  IncomingOptions,
  IncomingState,
  MigrationPackage,
  MigrationResult,
  OutgoingState,
  SendOptions,
} from './qemu-values.js';
import {
  Replica,
  ReplicaPointMerge,
  ReplicaPointRequests,
  ReplicaPointsTaken,
  ReplicaStart,
  SyncMirrorStartOptions,
  SyncMirrorStatus,
  SyncMirrorTarget,
} from './sync-replication-values.js';
import { StorageScanPage, StorageScanSummary } from './storage-scan-values.js';
import {
  CloneOptions,
  DiscoveredVm,
  DiscoverySnapshot,
  SnapshotInfo,
  StopOptions,
  VmFootprint,
  VmSpec,
} from './values.js';
import type { ProtocolVersion } from './version.js';

interface CallSpec<Args extends TSchema, Result extends TSchema> {
  since: ProtocolVersion;
  args: Args;
  result: Result;
}

const v1_0: ProtocolVersion = { major: 1, minor: 0 };
const v1_1: ProtocolVersion = { major: 1, minor: 1 };
const v1_2: ProtocolVersion = { major: 1, minor: 2 };
const v1_3: ProtocolVersion = { major: 1, minor: 3 };
const v1_4: ProtocolVersion = { major: 1, minor: 4 };
const v1_5: ProtocolVersion = { major: 1, minor: 5 };
const v1_6: ProtocolVersion = { major: 1, minor: 6 };
const v1_7: ProtocolVersion = { major: 1, minor: 7 };
const v1_8: ProtocolVersion = { major: 1, minor: 8 };
const v1_9: ProtocolVersion = { major: 1, minor: 9 };
const v1_10: ProtocolVersion = { major: 1, minor: 10 };

function call<Args extends TSchema, Result extends TSchema>(
  since: ProtocolVersion,
  args: Args,
  result: Result,
): CallSpec<Args, Result> {
  return { since, args, result };
}

const vmId = Type.String();
const onVm = Type.Tuple([vmId]);

export const agentCalls = {
  discover: call(v1_0, Type.Tuple([]), DiscoverySnapshot),
  startVm: call(v1_0, onVm, DiscoveredVm),
  stopVm: call(v1_0, Type.Tuple([vmId, StopOptions]), DiscoveredVm),
  rebootVm: call(v1_0, onVm, DiscoveredVm),
  resetVm: call(v1_0, onVm, DiscoveredVm),
  suspendVm: call(v1_0, onVm, DiscoveredVm),
  resumeVm: call(v1_0, onVm, DiscoveredVm),
  deleteVm: call(v1_0, onVm, Type.Null()),
  createVm: call(v1_0, Type.Tuple([VmSpec]), DiscoveredVm),
  checkNewVm: call(v1_0, Type.Tuple([VmSpec]), VmFootprint),
  cloneVm: call(v1_0, Type.Tuple([vmId, CloneOptions]), DiscoveredVm),
  listSnapshots: call(v1_0, onVm, Type.Array(SnapshotInfo)),
  createSnapshot: call(
    v1_0,
    Type.Tuple([vmId, Type.String()]),
    Type.Object({ snapshot: SnapshotInfo, vm: DiscoveredVm }),
  ),
  revertSnapshot: call(v1_0, Type.Tuple([vmId, Type.String()]), DiscoveredVm),
  deleteSnapshot: call(v1_0, Type.Tuple([vmId, Type.String()]), DiscoveredVm),
  // Live migration between QEMU hosts, both ends driven by the control plane.
  exportVm: call(v1_0, onVm, MigrationPackage),
  prepareIncoming: call(v1_0, Type.Tuple([MigrationPackage, IncomingOptions]), IncomingEndpoint),
  sendMigration: call(v1_0, Type.Tuple([vmId, IncomingEndpoint, SendOptions]), MigrationResult),
  finishIncoming: call(v1_0, onVm, DiscoveredVm),
  cleanupOutgoing: call(v1_0, onVm, Type.Null()),
  abortIncoming: call(v1_0, onVm, Type.Null()),
  /**
   * The source of a migration whose destination never resumed the guest (its QEMU removed first):
   * its QEMU, paused after the switch-over, runs the VM again as it was; refused while it sends.
   */
  keepOutgoing: call(v1_4, onVm, Type.Null()),
  incomingState: call(v1_0, onVm, IncomingState),
  outgoingState: call(v1_0, onVm, OutgoingState),
  // The portable-VM facet.
  describeVm: call(v1_1, onVm, PortableVm),
  runVm: call(v1_1, Type.Tuple([PortableVm, RunOptions]), DiscoveredVm),
  /** The guest-agent facet: until the VM's guest agent answers, or the timeout (ms). */
  waitForGuestAgent: call(v1_7, Type.Tuple([vmId, Type.Number({ minimum: 0 })]), Type.Null()),
  // High availability: the agent's watchdog, and the storage heartbeats of a root it shares.
  configureHa: call(
    v1_2,
    Type.Tuple([HaAgentSettings]),
    Type.Object({
      /** The name its heartbeat files carry (its host object's name). */
      hostName: Type.String(),
      bootId: Type.String(),
      /** The storage roots it writes its heartbeat into now (those holding its VMs' disks). */
      heartbeatRoots: Type.Array(Type.String()),
    }),
  ),
  readHaHeartbeats: call(v1_2, Type.Tuple([Type.String()]), Type.Array(HaHeartbeat)),
  /** Forgets released VMs (by UUID) once the control plane has dealt with them; answers the rest. */
  clearReleased: call(v1_2, Type.Tuple([Type.Array(Type.String())]), Type.Array(Type.String())),
  /**
   * VMs (by UUID) that high availability restarted on another host while this one was away: the
   * agent removes what is left of them here (definition, run files), never their disks. Answers
   * what it removed, and what it kept and why (running here, a migration of it under way).
   */
  discardMovedVms: call(
    v1_3,
    Type.Tuple([Type.Array(Type.String())]),
    Type.Object({
      discarded: Type.Array(Type.String()),
      kept: Type.Array(Type.Object({ uuid: Type.String(), reason: Type.String() })),
    }),
  ),
  /**
   * The disk-stream facet (backup and restore): readers and writers are opened at the agent and
   * named by a handle until closed, finished or aborted — or until the channel drops, which
   * closes every reader and aborts every writer it opened. Bytes cross in base64 pieces.
   */
  listStreamDisks: call(v1_5, onVm, Type.Array(StreamDisk)),
  openDiskReader: call(v1_5, Type.Tuple([vmId, Type.String(), DiskReadOptions]), OpenedReader),
  /**
   * The reader's extents in order, a page at a time from an offset (the `next` of the page before;
   * 0 first): a disk written here and there has more runs than one frame holds.
   */
  readerExtents: call(v1_5, Type.Tuple([Type.String(), Type.Integer({ minimum: 0 })]), ExtentPage),
  readDisk: call(v1_5, Type.Tuple([Type.String(), ...Piece]), PieceBytes),
  closeDiskReader: call(v1_5, Type.Tuple([Type.String()]), Type.Null()),
  openDiskWriter: call(v1_5, Type.Tuple([NewDisk]), OpenedWriter),
  writeDisk: call(
    v1_5,
    Type.Tuple([Type.String(), Type.Integer({ minimum: 0 }), PieceBytes]),
    Type.Null(),
  ),
  writeDiskZeroes: call(
    v1_5,
    Type.Tuple([Type.String(), Type.Integer({ minimum: 0 }), Type.Integer({ minimum: 1 })]),
    Type.Null(),
  ),
  finishDiskWriter: call(v1_5, Type.Tuple([Type.String()]), Disk),
  abortDiskWriter: call(v1_5, Type.Tuple([Type.String()]), Type.Null()),
  removeDiskImages: call(v1_5, Type.Tuple([Type.Array(Location)]), Type.Null()),
  listCheckpoints: call(v1_5, Type.Tuple([vmId, Type.String()]), Type.Array(DiskCheckpoint)),
  releaseCheckpoint: call(v1_5, Type.Tuple([vmId, Type.String(), DiskCheckpoint]), Type.Null()),
  /** Replica chains (replication): an overlay folded into its backing image. */
  mergeOverlay: call(v1_6, Type.Tuple([OverlayMerge]), Type.Null()),
  /**
   * The synchronous-replication facet. The recovery host's end: a replica (a daemon per disk,
   * detached: it outlives the agent) named by its directory.
   */
  startReplica: call(v1_8, Type.Tuple([ReplicaStart]), Replica),
  findReplica: call(v1_8, Type.Tuple([Type.String()]), Type.Union([Replica, Type.Null()])),
  takeReplicaPoint: call(
    v1_8,
    Type.Tuple([Type.String(), ReplicaPointRequests]),
    ReplicaPointsTaken,
  ),
  /** A point of a running replica folded into the image under it, inside the replica's daemon. */
  mergeReplicaPoint: call(v1_9, Type.Tuple([Type.String(), ReplicaPointMerge]), Type.Null()),
  stopReplica: call(v1_8, Type.Tuple([Type.String()]), Type.Null()),
  // The protected VM's end: a disk's write-blocking mirror into a replica.
  startSyncMirror: call(
    v1_8,
    Type.Tuple([vmId, Type.String(), SyncMirrorTarget, SyncMirrorStartOptions]),
    SyncMirrorStatus,
  ),
  syncMirrorStatus: call(v1_8, Type.Tuple([vmId, Type.String()]), SyncMirrorStatus),
  stopSyncMirror: call(v1_8, Type.Tuple([vmId, Type.String()]), SyncMirrorStatus),
  /**
   * The storage-scan facet: scans the host's storage roots and keeps the result under an id (for
   * a few minutes, or until its last page is read); the images are read a page at a time, from
   * an offset, since thousands of them do not fit one frame.
   */
  startStorageScan: call(v1_10, Type.Tuple([]), StorageScanSummary),
  readStorageScan: call(
    v1_10,
    Type.Tuple([Type.String({ maxLength: 64 }), Type.Integer({ minimum: 0 })]),
    StorageScanPage,
  ),
};

export type AgentMethod = keyof typeof agentCalls;
export type CallArgs<M extends AgentMethod> = Static<(typeof agentCalls)[M]['args']>;
export type CallResult<M extends AgentMethod> = Static<(typeof agentCalls)[M]['result']>;

export const agentMethods = Object.keys(agentCalls) as AgentMethod[];

export function isAgentMethod(value: string): value is AgentMethod {
  return Object.hasOwn(agentCalls, value);
}
