/**
 * A disk into a backup repository, and back: the disk is cut into the repository's fixed-size
 * chunks; a chunk that reads as zeroes is not stored (null in the manifest); any other is named
 * by its hash and stored once (deduplicated across backups, disks and VMs). A read of only what
 * changed since the last backup reads just those extents from the disk: a chunk they touch is the
 * last backup's chunk with them written over it (a chunk they mostly cover is read whole), and
 * every other chunk's name comes from the last backup's manifest. Several chunks are in flight at
 * once: reading, hashing and compressing overlap.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import type {
  DiskCheckpoint,
  DiskReader,
  DiskWriter,
} from '../../hypervisors/facets/disk-streams.js';
import type { BackupManifest, ManifestDisk } from './repository/manifest.js';
import type { BackupRepository, BackupWriter } from './repository/repository.js';

export interface DiskProgress {
  /** Bytes of the disk done (read, or known unchanged or zero). */
  doneBytes: number;
  totalBytes: number;
  readBytes: number;
}

const IN_FLIGHT = 4;

/** Runs `work` for 0..count-1 with at most `limit` at once; the first failure stops new work and is thrown. */
async function inParallel(
  count: number,
  limit: number,
  work: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const lane = async () => {
    while (failed === undefined && next < count) {
      const index = next++;
      try {
        await work(index);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  if (failed !== undefined) throw failed.error as Error;
}

const ZEROES = Buffer.alloc(64 * 1024);
/** Whether the bytes are all zero (compared 64 KiB at a time, as memory is). */
export const isZeroes = (bytes: Buffer) => {
  for (let at = 0; at < bytes.length; at += ZEROES.length) {
    const piece = bytes.subarray(at, at + ZEROES.length);
    if (!piece.equals(piece.length === ZEROES.length ? ZEROES : ZEROES.subarray(0, piece.length)))
      return false;
  }
  return true;
};

/**
 * What a read must take of one chunk: nothing (null), all of it, or only these ranges (offsets on
 * the disk) — the rest of the chunk is as the last backup holds it.
 */
type ChunkRead = null | 'whole' | Array<[offset: number, length: number]>;

/** More ranges than this in one chunk, or more than half of it changed: it is read whole. */
const MOST_RANGES = 16;

/**
 * What to read of each chunk: for a full read, the chunks with data, whole (the others are all
 * zero extents); for a changed read, the ranges of each chunk the changed extents cover.
 */
async function chunkReads(
  reader: DiskReader,
  chunkSize: number,
  count: number,
): Promise<ChunkRead[]> {
  const reads = new Array<ChunkRead>(count).fill(null);
  const changed = new Array<number>(count).fill(0);
  let covered = 0;
  for await (const extent of reader.extents()) {
    if (
      extent.offset < covered ||
      extent.length < 0 ||
      extent.offset + extent.length > reader.capacityBytes
    )
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        'the disk reader gave extents out of order or outside the disk',
        {
          offset: extent.offset,
          length: extent.length,
        },
      );
    covered = extent.offset + extent.length;
    if (extent.zero || extent.length === 0) continue;
    const first = Math.floor(extent.offset / chunkSize);
    const last = Math.floor((extent.offset + extent.length - 1) / chunkSize);
    for (let index = first; index <= last; index++) {
      if (reader.scope === 'full' || reads[index] === 'whole') {
        reads[index] = 'whole';
        continue;
      }
      const from = Math.max(extent.offset, index * chunkSize);
      const to = Math.min(extent.offset + extent.length, (index + 1) * chunkSize);
      const ranges = (reads[index] ??= []) as Array<[number, number]>;
      ranges.push([from, to - from]);
      changed[index]! += to - from;
      if (ranges.length > MOST_RANGES || changed[index]! * 2 > chunkSize) reads[index] = 'whole';
    }
  }
  return reads;
}

/**
 * Backs one disk up through the writer. With `parent` (the same disk in the last backup, of the
 * same size and chunk size) and a reader of what changed since it, only the changed chunks are
 * read; without, the reader must be a full one.
 */
export async function backupDisk(
  writer: BackupWriter,
  diskId: string,
  reader: DiskReader,
  options: {
    parent?: ManifestDisk;
    progress?: (progress: DiskProgress) => void;
    signal?: AbortSignal;
  } = {},
): Promise<ManifestDisk> {
  const chunkSize = writer.repository.config.chunkSize;
  const capacity = reader.capacityBytes;
  const count = Math.ceil(capacity / chunkSize);
  const { parent } = options;
  if (reader.scope === 'changed') {
    if (!parent)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `a read of what changed on ${diskId} needs the last backup of the disk`,
      );
    if (parent.capacityBytes !== capacity || parent.chunks.length !== count)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${diskId} changed size since its last backup: it is read in full`,
        {
          was: parent.capacityBytes,
          is: capacity,
        },
      );
  }
  const reads = await chunkReads(reader, chunkSize, count);
  const chunks = new Array<string | null>(count).fill(null);
  const disk: ManifestDisk = {
    diskId,
    capacityBytes: capacity,
    chunks,
    scope: reader.scope,
    readBytes: 0,
    storedBytes: 0,
    newChunks: 0,
    sharedChunks: 0,
    zeroChunks: 0,
  };
  let doneBytes = 0;
  const report = (bytes: number) => {
    doneBytes += bytes;
    options.progress?.({ doneBytes, totalBytes: capacity, readBytes: disk.readBytes });
  };
  await inParallel(count, IN_FLIGHT, async (index) => {
    if (options.signal?.aborted)
      throw new ZenithError('ZEN_TASK_CANCELLED', 'the backup was cancelled');
    const offset = index * chunkSize;
    const length = Math.min(chunkSize, capacity - offset);
    const read = reads[index]!;
    if (read === null) {
      const kept = reader.scope === 'changed' ? parent!.chunks[index]! : null;
      if (kept !== null) {
        // Unchanged since the last backup: the same chunk, if it is still there.
        if (!(await writer.reuseChunk(kept)))
          throw new ZenithError(
            'ZEN_BACKUP_CHUNK_DAMAGED',
            `chunk ${kept} of the last backup of ${diskId} is missing: back the disk up in full`,
            {
              chunk: kept,
              why: 'missing',
            },
          );
        chunks[index] = kept;
        disk.sharedChunks++;
      } else disk.zeroChunks++;
      report(length);
      return;
    }
    const readFromDisk = async (at: number, size: number) => {
      const bytes = await reader.read(at, size);
      if (bytes.length !== size)
        throw new ZenithError(
          'ZEN_DRIVER_ERROR',
          `the disk reader answered ${bytes.length} bytes for ${size}`,
          { offset: at },
        );
      disk.readBytes += size;
      return bytes;
    };
    // A chunk partly changed: the last backup's chunk with the changed ranges read over it. Where
    // that chunk cannot be read back, the disk is read whole instead (it holds all of it).
    const kept = read === 'whole' ? null : parent!.chunks[index]!;
    const base =
      read === 'whole'
        ? null
        : kept === null
          ? Buffer.alloc(length)
          : await writer.repository.getChunk(kept).catch((error: unknown) => {
              if (isZenithError(error) && error.code === 'ZEN_BACKUP_CHUNK_DAMAGED') return null;
              throw error;
            });
    let bytes: Buffer;
    if (base === null || base.length !== length || read === 'whole')
      bytes = await readFromDisk(offset, length);
    else {
      for (const [at, size] of read) (await readFromDisk(at, size)).copy(base, at - offset);
      bytes = base;
    }
    if (isZeroes(bytes)) {
      disk.zeroChunks++;
    } else {
      const { name, storedBytes } = await writer.putChunk(bytes);
      chunks[index] = name;
      if (storedBytes > 0) {
        disk.newChunks++;
        disk.storedBytes += storedBytes;
      } else disk.sharedChunks++;
    }
    report(length);
  });
  return disk;
}

/**
 * Writes a backed-up disk to a new image: every chunk read back and checked against its name (a
 * damaged one stops the restore with ZEN_BACKUP_CHUNK_DAMAGED: nothing is restored silently
 * wrong), zero chunks written as zeroes. The writer is aborted (its image removed) on any failure.
 */
export async function restoreDisk(
  repository: BackupRepository,
  disk: ManifestDisk,
  writer: DiskWriter,
  options: { progress?: (progress: DiskProgress) => void; signal?: AbortSignal } = {},
): Promise<void> {
  const chunkSize = repository.config.chunkSize;
  if (writer.capacityBytes < disk.capacityBytes)
    throw new ZenithError('ZEN_BAD_REQUEST', `the new disk is smaller than ${disk.diskId} was`, {
      capacityBytes: writer.capacityBytes,
      needed: disk.capacityBytes,
    });
  let doneBytes = 0;
  try {
    await inParallel(disk.chunks.length, IN_FLIGHT, async (index) => {
      if (options.signal?.aborted)
        throw new ZenithError('ZEN_TASK_CANCELLED', 'the restore was cancelled');
      const offset = index * chunkSize;
      const length = Math.min(chunkSize, disk.capacityBytes - offset);
      const name = disk.chunks[index];
      if (name === null || name === undefined) {
        // A new image reads as zeroes already: a chunk of zeroes is nothing to write.
        if (!writer.zeroed) await writer.writeZeroes(offset, length);
      } else {
        const bytes = await repository.getChunk(name);
        if (bytes.length !== length)
          throw new ZenithError(
            'ZEN_BACKUP_CHUNK_DAMAGED',
            `chunk ${name} holds ${bytes.length} bytes where ${length} belong`,
            {
              chunk: name,
              why: 'wrong length',
            },
          );
        await writer.write(offset, bytes);
      }
      doneBytes += length;
      options.progress?.({ doneBytes, totalBytes: disk.capacityBytes, readBytes: doneBytes });
    });
  } catch (error) {
    await writer.abort().catch(() => undefined);
    throw error;
  }
}

/**
 * A backed-up disk's bytes as the guest saw them, from the first to the last (a download): each
 * chunk read back and checked against its name, zero chunks as zeroes. A damaged chunk ends the
 * sequence with ZEN_BACKUP_CHUNK_DAMAGED, after `damaged` (the backup is marked): a reader that
 * counts what it got finds it short, and nothing passes for the disk silently.
 */
export async function* diskBytes(
  repository: BackupRepository,
  disk: ManifestDisk,
  damaged: (error: ZenithError) => Promise<void>,
): AsyncGenerator<Buffer> {
  const chunkSize = repository.config.chunkSize;
  let zeroes: Buffer | undefined;
  for (const [index, name] of disk.chunks.entries()) {
    const length = Math.min(chunkSize, disk.capacityBytes - index * chunkSize);
    if (name === null || name === undefined) {
      zeroes ??= Buffer.alloc(chunkSize);
      yield zeroes.subarray(0, length);
      continue;
    }
    yield await sentChunk(repository, name, length, damaged);
  }
}

/**
 * A chunk of a disk being sent, read back and checked (its name, its length); a damaged one is
 * told to `damaged` (the backup is marked) before ZEN_BACKUP_CHUNK_DAMAGED ends the sending.
 */
export async function sentChunk(
  repository: BackupRepository,
  name: string,
  length: number,
  damaged: (error: ZenithError) => Promise<void>,
): Promise<Buffer> {
  try {
    const bytes = await repository.getChunk(name);
    if (bytes.length !== length)
      throw new ZenithError(
        'ZEN_BACKUP_CHUNK_DAMAGED',
        `chunk ${name} holds ${bytes.length} bytes where ${length} belong`,
        { chunk: name, why: 'wrong length' },
      );
    return bytes;
  } catch (error) {
    if (isZenithError(error) && error.code === 'ZEN_BACKUP_CHUNK_DAMAGED') await damaged(error);
    throw error;
  }
}

/**
 * One backup of a VM: each disk through a reader opened for it in turn (only what changed where
 * the reader reads from the parent's checkpoint) and closed after, then the manifest — or, on any
 * failure, nothing but chunks the next garbage collection removes, and every checkpoint the reads
 * made handed to `unkept` (the family releases it: the next backup reads from the parent's).
 */
export async function takeBackup(
  repository: BackupRepository,
  subject: {
    vm: BackupManifest['vm'];
    job?: string | null;
    task?: string;
    /** The last backup of the VM, which changed reads are read against. */
    parent?: BackupManifest;
  },
  disks: Array<{ diskId: string; open: () => Promise<DiskReader> }>,
  options: {
    progress?: (progress: DiskProgress & { diskId: string }) => void;
    signal?: AbortSignal;
    unkept?: (diskId: string, checkpoint: DiskCheckpoint) => Promise<void>;
  } = {},
): Promise<BackupManifest> {
  const takenAt = new Date().toISOString();
  const writer = await repository.beginBackup();
  const made: Array<{ diskId: string; checkpoint: DiskCheckpoint }> = [];
  try {
    const written = [];
    for (const { diskId, open } of disks) {
      const parent = subject.parent?.disks.find((disk) => disk.diskId === diskId);
      const reader = await open();
      try {
        if (reader.checkpoint) made.push({ diskId, checkpoint: reader.checkpoint });
        const disk = await backupDisk(writer, diskId, reader, {
          ...(parent ? { parent } : {}),
          ...(options.progress
            ? { progress: (p: DiskProgress) => options.progress!({ ...p, diskId }) }
            : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        written.push({
          ...disk,
          ...(reader.checkpoint ? { checkpoint: reader.checkpoint.name } : {}),
          ...(reader.quiesce
            ? {
                quiesced: reader.quiesce.quiesced,
                frozenFileSystems: reader.quiesce.frozenFileSystems,
                ...(reader.quiesce.why ? { quiesceNote: reader.quiesce.why.slice(0, 1024) } : {}),
              }
            : {}),
        });
      } finally {
        await reader.close();
      }
    }
    return await writer.commit({
      vm: subject.vm,
      takenAt,
      finishedAt: new Date().toISOString(),
      parent: subject.parent?.id ?? null,
      job: subject.job ?? null,
      ...(subject.task ? { task: subject.task } : {}),
      disks: written,
    });
  } catch (error) {
    await writer.abort();
    for (const { diskId, checkpoint } of made)
      await options.unkept?.(diskId, checkpoint).catch(() => undefined);
    throw error;
  }
}
