/**
 * The disk-stream facet's values as they cross the agent channel (protocol 1.5): a VM's disks,
 * readers and writers held open at the agent under a handle, and the bytes of a disk as base64
 * pieces of at most `diskPieceBytes` (a piece and its envelope fit the channel's 1 MiB frames).
 */
import { Type } from 'typebox';
import { DiskFormat, Location } from './portable-values.js';

/** The most bytes one readDisk or writeDisk call carries. */
export const diskPieceBytes = 512 * 1024;

export const StreamDisk = Type.Object({
  diskId: Type.String(),
  capacityBytes: Type.Integer({ minimum: 0 }),
  format: DiskFormat,
});

export const DiskCheckpoint = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) });

export const DiskReadOptions = Type.Object({
  changedSince: Type.Optional(DiskCheckpoint),
  /** Whose the new checkpoint is (protocol 1.6; zenith-<tag>-…). */
  checkpointTag: Type.Optional(Type.String({ pattern: '^[a-z]{1,16}$' })),
});

export const OpenedReader = Type.Object({
  handle: Type.String(),
  capacityBytes: Type.Integer({ minimum: 0 }),
  scope: Type.Union([Type.Literal('full'), Type.Literal('changed')]),
  checkpoint: Type.Optional(DiskCheckpoint),
  /** A running VM's read: whether the guest's file systems were frozen (an older agent: absent). */
  quiesce: Type.Optional(
    Type.Object({
      quiesced: Type.Boolean(),
      frozenFileSystems: Type.Integer({ minimum: 0 }),
      why: Type.Optional(Type.String({ maxLength: 1024 })),
    }),
  ),
});

export const DiskExtent = Type.Object({
  offset: Type.Integer({ minimum: 0 }),
  length: Type.Integer({ minimum: 0 }),
  zero: Type.Boolean(),
});

/**
 * The most extents one readerExtents call answers (about 60 bytes each as JSON: a page is well
 * within a frame). A disk written here and there has tens of thousands of runs.
 */
export const extentsPerPage = 4096;

/** A page of a reader's extents, from an offset; `next` is where the next page starts, null at the end. */
export const ExtentPage = Type.Object({
  extents: Type.Array(DiskExtent, { maxItems: extentsPerPage }),
  next: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
});

export const NewDisk = Type.Object({
  location: Location,
  format: DiskFormat,
  capacityBytes: Type.Integer({ minimum: 1 }),
  replace: Type.Optional(Type.Boolean()),
  /** The byte ranges that will hold data, when known (offset, length): the image is laid out for them. */
  dataExtents: Type.Optional(
    Type.Array(Type.Tuple([Type.Integer({ minimum: 0 }), Type.Integer({ minimum: 0 })]), {
      maxItems: extentsPerPage,
    }),
  ),
  /** An overlay of this image (protocol 1.6): it reads as it wherever nothing was written. */
  backing: Type.Optional(Location),
});

/** An overlay folded into its backing image (protocol 1.6). */
export const OverlayMerge = Type.Object({
  overlay: Location,
  backing: Location,
  above: Type.Union([Location, Type.Null()]),
});

export const OpenedWriter = Type.Object({
  handle: Type.String(),
  capacityBytes: Type.Integer({ minimum: 0 }),
  /** A new image that reads as zeroes until written. */
  zeroed: Type.Optional(Type.Boolean()),
});

/** A piece of a disk: its offset and length within the disk. */
export const Piece = [
  Type.Integer({ minimum: 0 }),
  Type.Integer({ minimum: 1, maximum: diskPieceBytes }),
] as const;

/** Base64 of at most one piece. */
export const PieceBytes = Type.String({ maxLength: Math.ceil(diskPieceBytes / 3) * 4 });
