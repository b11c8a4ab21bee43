/**
 * What every restore shares: where a restore writes its new disks on a host, and its progress
 * over several disks (bytes done, read, rate, time left).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { DiskStreamFacet, NewDisk, PortableDisk } from '../../hypervisors/driver.js';
import { MAX_DATA_EXTENTS } from '../../hypervisors/facets/disk-streams.js';
import type { ActionContext } from '../../hypervisors/driver-types.js';
import type { ManagedObject } from '../inventory/model.js';
import { restoreDisk, type DiskProgress } from './disk-backup.js';
import { dataExtents } from './qcow2-stream.js';
import type { ManifestDisk } from './repository/manifest.js';
import type { BackupRepository } from './repository/repository.js';

/**
 * Where a restore of `name` writes its disks on the host: where its family says, or a new
 * directory on the host's first storage root, named after `name`.
 */
export async function restorePaths(
  host: ManagedObject,
  streams: DiskStreamFacet,
  name: string,
  diskIds: string[],
): Promise<string[]> {
  if (streams.newDiskPaths) return streams.newDiskPaths(name, diskIds);
  const roots = host.facts['storage.roots'];
  const root = Array.isArray(roots) && typeof roots[0] === 'string' ? roots[0] : undefined;
  if (!root)
    throw new ZenithError('ZEN_UNSUPPORTED', `${host.name} names no storage root to restore into`);
  const directory = join(root, `${name}-${randomBytes(4).toString('hex')}`);
  return diskIds.map((diskId) => join(directory, `${diskId}.qcow2`));
}

/** Progress over several disks: bytes done, bytes read, rate and time left. */
export function progressOver(
  totalBytes: number,
  startedAt: number,
  clock: Clock,
  report: ActionContext['progress'],
  verb: string,
) {
  let before = 0;
  let current = '';
  return {
    next(diskId: string, doneBefore: number) {
      current = diskId;
      before = doneBefore;
    },
    update(progress: DiskProgress) {
      const done = before + progress.doneBytes;
      const seconds = Math.max((clock.now() - startedAt) / 1000, 0.001);
      const rate = done / seconds;
      report({
        percent: totalBytes > 0 ? (done / totalBytes) * 100 : 100,
        message: `${verb} ${current}`,
        details: {
          doneBytes: done,
          totalBytes,
          readBytes: progress.readBytes,
          bytesPerSecond: Math.round(rate),
          etaSeconds: rate > 0 ? Math.round((totalBytes - done) / rate) : 0,
        },
      });
    },
  };
}

/**
 * The new image a backed-up disk is restored into at `path`: a qcow2 laid out up front for the
 * chunks that hold data (written in place, never converted), replacing what a cut-off run left.
 */
export function restoredImage(disk: ManifestDisk, chunkSize: number, path: string): NewDisk {
  const extents = dataExtents(disk, chunkSize);
  return {
    location: { path },
    format: 'qcow2',
    capacityBytes: disk.capacityBytes,
    replace: true,
    ...(extents.length <= MAX_DATA_EXTENTS ? { dataExtents: extents } : {}),
  };
}

/**
 * Writes a backed-up disk as a new image at `path` on a host (its disk-stream facet), each chunk
 * checked as it is read: a damaged one is told to `damaged` (the backup is marked) and nothing of
 * the image stays. Answers the disk as a portable VM names it.
 */
export async function writeRestoredDisk(
  repository: BackupRepository,
  disk: ManifestDisk,
  streams: DiskStreamFacet,
  path: string,
  context: ActionContext,
  options: {
    progress: (progress: DiskProgress) => void;
    damaged: (error: ZenithError) => Promise<void>;
  },
): Promise<PortableDisk> {
  const writer = await streams.openWriter(
    restoredImage(disk, repository.config.chunkSize, path),
    context,
  );
  try {
    // restoreDisk aborts the writer (its image removed) when it fails.
    await restoreDisk(repository, disk, writer, {
      progress: options.progress,
      signal: context.signal,
    });
  } catch (error) {
    if (isZenithError(error) && error.code === 'ZEN_BACKUP_CHUNK_DAMAGED')
      await options.damaged(error);
    throw error;
  }
  return writer.finish();
}
