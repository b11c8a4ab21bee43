/**
 * The disk-stream facet: read a VM's disk as the guest sees it, or write a
 * new disk image, as extents of bytes. Backup reads disks into a chunk
 * repository and restores them, replication sends changed extents to a
 * replica, conversion reads a disk in one family and writes it in another:
 * all of them speak this, whatever the family's image format and transport.
 *
 * A read covers either the whole disk (`scope: 'full'`: every extent, each
 * either data or known zeroes, so holes are neither read nor stored) or only
 * what changed since a checkpoint (`scope: 'changed'`). Changed extents come
 * from dirty bitmaps (QEMU) or changed-block tracking; a family that cannot
 * tell refuses `changedSince` with ZEN_UNSUPPORTED rather than answer a full
 * read in its place.
 *
 * The QEMU driver has it (qemu/qemu-disk-streams.ts): a persistent dirty
 * bitmap per checkpoint, and a point-in-time export of the disk over NBD
 * (qemu-nbd for a stopped VM, QEMU's own NBD server and a fleece overlay for a
 * running one), read by the NBD client in src/protocols/nbd. A checkpoint
 * that was lost (QEMU killed before it saved its bitmaps, or no such bitmap)
 * is refused with ZEN_INVALID_STATE (details.checkpoint 'lost'): the caller
 * reads the disk in full instead, never a wrong increment.
 */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext } from '../driver-types.js';
import type { PortableDisk, PortableDiskFormat, PortableLocation } from './portable-vm.js';

export interface StreamDisk {
  /** Names the disk within its VM (QEMU: disk0, disk1, … in the order the guest sees them). */
  diskId: string;
  capacityBytes: number;
  format: PortableDiskFormat;
}

/** A point a later read may start from, made by a full or changed read of the same disk. */
export interface DiskCheckpoint {
  name: string;
}

export interface DiskReadOptions {
  /** Only the extents written since this checkpoint. */
  changedSince?: DiskCheckpoint;
  /**
   * Whose the read's new checkpoint is (`zenith-<tag>-…`, a tag of 1 to 16 lower-case letters):
   * replication and backup each keep their own checkpoints of a disk, and each releases only its
   * own strays. Absent: a backup's (`zenith-…`).
   */
  checkpointTag?: string;
}

/** The checkpoint tag of replication's reads: backup leaves `zenith-replica-…` alone. */
export const REPLICA_CHECKPOINT_TAG = 'replica';

/** Whether a checkpoint's name carries the tag (a backup's carry none). */
export function checkpointTagged(name: string, tag: string): boolean {
  return name.startsWith(`zenith-${tag}-`);
}

export interface DiskExtent {
  offset: number;
  length: number;
  /** Reads as zeroes: nothing to read or store. */
  zero: boolean;
}

/**
 * Whether the guest's file systems were frozen (through its guest agent) at a running VM's point
 * in time: if so, the view needs no journal replay; if not, it is crash-consistent.
 */
export interface DiskQuiesce {
  quiesced: boolean;
  /** File systems the agent froze (0 when not quiesced). */
  frozenFileSystems: number;
  /** Why not quiesced: no agent channel, the agent did not answer, the freeze was refused. */
  why?: string;
}

export interface DiskReader {
  readonly capacityBytes: number;
  readonly scope: 'full' | 'changed';
  /** A running VM's read: whether its file systems were frozen for the point in time (absent: stopped). */
  readonly quiesce?: DiskQuiesce;
  /**
   * Where a later changed read of this disk may start: this read's point in time. The caller keeps
   * it once what it read is safe (a backup committed), and releases the one it read from; if it
   * does not keep it, it releases it.
   */
  readonly checkpoint?: DiskCheckpoint;
  /** The extents to copy, in order and without overlap; a full read's cover the whole disk. */
  extents(): AsyncIterable<DiskExtent>;
  /** Bytes of the disk as the guest sees them. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Ends the read and everything it held open. */
  close(): Promise<void>;
}

export interface DiskWriter {
  readonly capacityBytes: number;
  /** A new image that reads as zeroes wherever nothing was written: writing zeroes is needless. */
  readonly zeroed?: boolean;
  write(offset: number, data: Uint8Array): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  /** Makes every write durable and closes: answers the disk as a portable VM names it. */
  finish(): Promise<PortableDisk>;
  /** Closes and removes the image: nothing of it stays. */
  abort(): Promise<void>;
}

export interface NewDisk {
  location: PortableLocation;
  format: PortableDiskFormat;
  capacityBytes: number;
  /**
   * A file already there is what a write cut off before left (a restore run again after a crash):
   * it is replaced — unless a VM uses it or claims it (ZEN_DISK_IN_USE).
   */
  replace?: boolean;
  /**
   * The byte ranges (offset, length) that will hold data, when the caller knows them before it
   * writes (a restore, from the backup's manifest): the image is laid out for them up front, and a
   * write outside them is refused (ZEN_BAD_REQUEST). At most MAX_DATA_EXTENTS.
   */
  dataExtents?: ReadonlyArray<readonly [offset: number, length: number]>;
  /**
   * An overlay of this image (on the same host, in the same format): it reads as the backing image
   * wherever nothing was written (a replica's next point in time holds only what changed). Needs
   * `dataExtents`, and a write of zeroes outside them is refused: there it shows its backing.
   */
  backing?: PortableLocation;
}

/**
 * One image of a chain folded into the one under it: `overlay`'s data written into `backing` (its
 * backing image), `above` (the image whose backing `overlay` was, if any) pointed at `backing`
 * instead, and `overlay` removed. Every image in the chain above keeps reading as before; the point
 * in time `backing` showed is gone.
 */
export interface OverlayMerge {
  overlay: PortableLocation;
  backing: PortableLocation;
  above: PortableLocation | null;
}

/** The most data extents a new disk is laid out for (as many as fit one agent channel frame); a caller with more names none. */
export const MAX_DATA_EXTENTS = 4096;

export interface DiskStreamFacet {
  /** The VM's disks as streams name them. */
  listDisks(vmExternalId: string): Promise<StreamDisk[]>;
  /**
   * A reader of one disk of the VM. The disk must not change while it is read: a family reads
   * a stopped VM's disk, or a point-in-time view of a running one where it can make one
   * (otherwise ZEN_INVALID_STATE).
   */
  openReader(
    vmExternalId: string,
    diskId: string,
    options: DiskReadOptions,
    context: ActionContext,
  ): Promise<DiskReader>;
  /**
   * A writer of a new image (its directory made if need be); an existing file is never
   * overwritten (ZEN_CONFLICT) unless `replace` says it is a leftover no VM uses.
   */
  openWriter(disk: NewDisk, context: ActionContext): Promise<DiskWriter>;
  /**
   * Where a restore of a VM named `name` writes its new disks on this host, one absolute path a
   * disk (chosen once, when the restore is asked for). A family without it writes them into a new
   * directory on the host's first storage root (its `storage.roots` fact).
   */
  newDiskPaths?(name: string, diskIds: string[]): Promise<string[]>;
  /**
   * A directory of this host where Zenith keeps images of its own in directories (a replica's
   * chain of points), for a family without storage roots (`storage.roots`): libvirt's is the
   * directory of the connection's storage pool.
   */
  imageDirectory?(): Promise<string>;
  /**
   * Removes images a writer made that no VM came to use (a restore cut off before its VM was
   * defined, a restore test's leftovers, a replication cycle cut off) — and what a write of them
   * cut off left — and their directory once it is empty. A missing one is
   * fine; one a VM uses or claims is refused (ZEN_DISK_IN_USE), as is one outside the host's roots.
   */
  removeImages(locations: PortableLocation[]): Promise<void>;
  /**
   * Folds an overlay into its backing image (OverlayMerge): safe to run again after a cut-off at
   * any step (a missing overlay is one merged already). Images a running VM holds open are refused
   * (ZEN_DISK_IN_USE), and so are images outside the host's roots. A family without it (or a host
   * agent of a protocol before it) cannot keep replica chains.
   */
  readonly mergeOverlay?: ((merge: OverlayMerge) => Promise<void>) | undefined;
  /**
   * The checkpoints the disk holds (made by reads; a read killed before its caller kept or released
   * the one it made leaves it here, which the caller, knowing which it keeps, releases).
   */
  listCheckpoints(vmExternalId: string, diskId: string): Promise<DiskCheckpoint[]>;
  /** Ends a checkpoint: what changes afterwards is no longer tracked for it (an unknown one is fine). */
  releaseCheckpoint(
    vmExternalId: string,
    diskId: string,
    checkpoint: DiskCheckpoint,
  ): Promise<void>;
}

/**
 * A checkpoint a changed read cannot start from (no such bitmap, or not saved cleanly): the caller
 * reads the disk in full instead (ZEN_INVALID_STATE, details.checkpoint 'lost').
 */
export function checkpointLost(checkpoint: string, why: string): ZenithError {
  return new ZenithError(
    'ZEN_INVALID_STATE',
    `the checkpoint ${checkpoint} cannot be read from (${why}): read the disk in full`,
    { checkpoint: 'lost', name: checkpoint, why },
  );
}
