/**
 * A backed-up disk as a qcow2 image: since the manifest says which chunks hold data before a byte
 * is read, the image's whole layout is known up front (src/protocols/qcow2), so a download streams
 * it front to back with its length known and a restore writes it in place, and chunks of zeroes
 * take no room in it (decision 0036).
 */
import { ZenithError } from '../../core/errors.js';
import { Qcow2LayoutError, Qcow2Plan } from '../../protocols/qcow2/qcow2-layout.js';
import { sentChunk } from './disk-backup.js';
import type { ManifestDisk } from './repository/manifest.js';
import type { BackupRepository } from './repository/repository.js';

/** The byte ranges of a backed-up disk that hold data (its chunks that are not all zeroes), neighbours joined. */
export function dataExtents(disk: ManifestDisk, chunkSize: number): Array<[number, number]> {
  const extents: Array<[number, number]> = [];
  for (const [index, name] of disk.chunks.entries()) {
    if (name === null) continue;
    const offset = index * chunkSize;
    const length = Math.min(chunkSize, disk.capacityBytes - offset);
    const last = extents.at(-1);
    if (last && last[0] + last[1] === offset) last[1] += length;
    else extents.push([offset, length]);
  }
  return extents;
}

/** The image's layout for a backed-up disk (its size, before a byte is read). */
export function qcow2Plan(disk: ManifestDisk, chunkSize: number): Qcow2Plan {
  try {
    return Qcow2Plan.of(disk.capacityBytes, dataExtents(disk, chunkSize));
  } catch (error) {
    if (error instanceof Qcow2LayoutError)
      throw new ZenithError('ZEN_UNSUPPORTED', `${disk.diskId} makes no qcow2: ${error.message}`);
    throw error;
  }
}

/**
 * The image's bytes, front to back: the metadata, then each stored chunk read back and checked
 * (padded to whole clusters at the disk's end). A damaged chunk ends the sequence with
 * ZEN_BACKUP_CHUNK_DAMAGED after `damaged`: the reader gets fewer bytes than the layout said.
 */
export async function* qcow2Bytes(
  repository: BackupRepository,
  disk: ManifestDisk,
  plan: Qcow2Plan,
  damaged: (error: ZenithError) => Promise<void>,
): AsyncGenerator<Buffer> {
  const chunkSize = repository.config.chunkSize;
  yield* plan.metadata();
  for (const [index, name] of disk.chunks.entries()) {
    if (name === null) continue;
    const length = Math.min(chunkSize, disk.capacityBytes - index * chunkSize);
    yield await sentChunk(repository, name, length, damaged);
    const padding = Math.ceil(length / plan.clusterSize) * plan.clusterSize - length;
    if (padding > 0) yield Buffer.alloc(padding);
  }
}
