/**
 * The synchronous-replication facet: both ends of a replica that receives every write of a
 * protected VM's disk before the guest sees it complete (RPO 0).
 *
 * - The recovery host's end keeps, per protected disk, a writable overlay of the newest ready
 *   replica point, served over the network with a pre-shared key (TLS-PSK). It outlives whatever
 *   started it (an agent restarted finds it again by its directory), and a point in time is taken
 *   inside it: the live overlay is frozen as the point (on stable storage before it is answered)
 *   and a new overlay on top of it takes the writes from then on — the same chain of images
 *   (ready point ← … ← point) interval replication makes.
 * - The protected VM's end mirrors a disk of the running VM into that overlay, each guest write
 *   completing only once the replica has it, from the moment the mirror is ready.
 *
 * The QEMU driver has it (qemu/qemu-sync-replication.ts: a qemu-storage-daemon per disk, QEMU's
 * write-blocking mirror over NBD); an agent host from protocol 1.8. A point is taken disk after
 * disk: each disk's point holds every write completed before it was taken, but the points of a VM
 * with several disks are not one instant across them.
 *
 * Errors keep the codes of the QEMU primitives: ZEN_CONNECTION_AUTH_FAILED (the replica refused
 * the key), ZEN_CONNECTION_FAILED (nothing listens there, or the export is refused),
 * QMP_JOB_FAILED (the mirror's first pass failed), ZEN_TIMEOUT, ZEN_CONFLICT (a replica of that
 * directory, or a mirror of that disk, runs already; an overlay would replace an image),
 * ZEN_NOT_FOUND (no such base image, disk or replica), ZEN_BAD_REQUEST (a key QEMU cannot carry,
 * a path outside the host's storage roots).
 */

/** A replication's key: the identity the mirror presents, and the secret both ends hold (hex). */
export interface ReplicaPsk {
  identity: string;
  /** 16 to 64 bytes as hex. A secret: kept in a 0600 file at each end, never logged. */
  key: string;
}

export interface ReplicaDiskStart {
  /** Names the disk within the protected VM (QEMU: disk0, disk1, …); its export has this name. */
  diskId: string;
  /** The newest ready replica point of the disk (an image on this host): the overlay's backing. */
  base: string;
  /** Where the live overlay is made (it must not exist). Absent: beside `base`, named after the disk and the time. */
  overlay?: string;
}

export interface ReplicaStart {
  /** The replica's own directory on this host (one daemon's state and key per disk below it). */
  directory: string;
  disks: ReplicaDiskStart[];
  psk: ReplicaPsk;
  /**
   * The address the replica listens on. Absent (or without a host): the recovery host's migration
   * address, the one other hosts reach it on. Each disk is served on a port of its own: a port
   * given here is for a replica of one disk; absent, a free port is taken for each.
   */
  listen?: { host?: string; port?: number };
  /** Every write on stable storage at the replica before it is acknowledged (a cost in latency). Default false. */
  writethrough?: boolean;
}

/** A disk's end of a running replica: where its mirror connects, and the overlay it writes. */
export interface ReplicaDisk {
  diskId: string;
  host: string;
  port: number;
  exportName: string;
  base: string;
  /** The live overlay: what the mirror writes now (the next point's image). */
  overlay: string;
  startedAt: string;
}

export interface Replica {
  directory: string;
  disks: ReplicaDisk[];
}

export interface ReplicaPointRequest {
  diskId: string;
  /** The new live overlay (must not exist): it takes the writes from the point on. */
  path: string;
}

/** A point taken: the frozen image (the point, fsynced) and the new live overlay on top of it. */
export interface ReplicaPointTaken {
  diskId: string;
  point: string;
  overlay: string;
  takenAt: string;
}

/**
 * Folding a point into the one under it while the replica runs: `overlay` (a point of the running
 * replica's chain) is merged into `backing` (the image directly under it), whatever reads through
 * `overlay` (a later point, or the live overlay) reads through `backing` from then on, and
 * `overlay`'s file is removed.
 */
export interface ReplicaPointMerge {
  diskId: string;
  overlay: string;
  backing: string;
}

/** Where the protected VM's mirror sends a disk's writes: a ReplicaDisk's address and the key. */
export interface SyncMirrorTarget {
  host: string;
  port: number;
  /** Default `disk0`. */
  exportName?: string;
  psk: ReplicaPsk;
}

export interface SyncMirrorStartOptions {
  /** How long the first pass (the whole disk) may take. Default 10 minutes. */
  readyTimeoutMs?: number;
  /** How long reaching the target's port may take. Default 5 s. */
  connectTimeoutMs?: number;
}

/**
 * none: no mirror of this disk. copying: the first pass runs (writes are mirrored already, the
 * replica is not whole yet). ready: every write the guest completes is on the replica. failed:
 * the mirror ended with the hypervisor's error (the target was lost); the guest runs on without it.
 * ended: it ended without an error.
 */
export type SyncMirrorStatus =
  | { state: 'none' }
  | { state: 'copying'; jobId: string; copiedBytes: number; totalBytes: number }
  /** inFlightBytes: sent to the target and not yet acknowledged (stuck there when the link went silent). */
  | { state: 'ready'; jobId: string; totalBytes: number; inFlightBytes: number }
  | { state: 'failed'; jobId: string; error: string }
  | { state: 'ended'; jobId: string };

export interface SyncReplicationFacet {
  /** Starts the replica of each disk; ZEN_CONFLICT when one runs for the directory already. */
  startReplica(request: ReplicaStart): Promise<Replica>;
  /** The replica running for the directory (after a restart too); null when none runs. */
  findReplica(directory: string): Promise<Replica | null>;
  /** Freezes each named disk's live overlay as a point and goes on into the new overlay. */
  takePoint(directory: string, points: ReplicaPointRequest[]): Promise<ReplicaPointTaken[]>;
  /**
   * Folds a point of a running replica's chain into the image under it, inside the replica (the
   * chain is held open by it: no other process may write it). Safe to run again: an `overlay`
   * that is gone, or no longer in the chain, was merged already (its file is removed).
   * ZEN_NOT_FOUND when no replica of the disk runs in the directory (fold it as files then);
   * ZEN_INVALID_STATE when `backing` is not directly under `overlay`; ZEN_DISK_IN_USE when another
   * process holds `backing` open (a test failover's VM reading the chain).
   */
  mergePoint(directory: string, merge: ReplicaPointMerge): Promise<void>;
  /** Stops the replica and removes its key; its images stay. Nothing running is fine. */
  stopReplica(directory: string): Promise<void>;
  /** Mirrors a disk of a running VM to a replica; answers once the mirror is ready. */
  startMirror(
    vmExternalId: string,
    diskId: string,
    target: SyncMirrorTarget,
    options?: SyncMirrorStartOptions,
  ): Promise<SyncMirrorStatus>;
  mirrorStatus(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus>;
  /**
   * Takes the mirror down (the guest writes on without it) and answers the status it had before:
   * a failed mirror says why. Nothing there is fine.
   */
  stopMirror(vmExternalId: string, diskId: string): Promise<SyncMirrorStatus>;
}
