/**
 * A new qcow2 image written by the disk-stream facet (a restore), with plain positioned writes into
 * a file beside it: QEMU's NBD server takes writes at a fifth of the disk's speed (measured in
 * docs/performance.md). Until it is finished the image is only `<file>.zenith-partial`, so a write
 * cut off at any point leaves nothing a VM could take for its disk.
 *
 * When the caller says which byte ranges will hold data (`dataExtents`: a restore knows from the
 * backup's manifest), the staging file is the qcow2 image itself, laid out up front
 * (src/protocols/qcow2): each write goes straight to its place, and finishing is an fsync and a
 * link into place. Otherwise the staging file is a sparse raw image that `qemu-img convert` turns
 * into the qcow2 when the write finishes.
 */
import { existsSync, rmSync } from 'node:fs';
import { type FileHandle, link, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isZenithError, ZenithError } from '../../core/errors.js';
import {
  Qcow2LayoutError,
  Qcow2Plan,
  type Extent,
  type Qcow2Backing,
} from '../../protocols/qcow2/qcow2-layout.js';
import type { DiskWriter } from '../facets/disk-streams.js';
import type { PortableDisk } from '../facets/portable-vm.js';
import { convertImage, IMAGE_MODE } from './qemu-img.js';

/** Where a write stages a disk's bytes before they become `file`. */
export const stagingFile = (file: string) => `${file}.zenith-partial`;

/** A failed write of a disk as the catalogue's error (a full host disk: ZEN_STORAGE_FULL, its errno in details). */
function writeFailed(file: string, error: unknown): ZenithError {
  if (isZenithError(error)) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT')
    return new ZenithError('ZEN_STORAGE_FULL', `${file}: the storage is full`, { file, errno });
  return new ZenithError(
    'ZEN_DRIVER_ERROR',
    `writing ${file} failed: ${(error as Error).message}`,
    errno ? { file, errno } : { file },
  );
}

/** Makes a directory's entries durable (a file linked or renamed into it). */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Writes a new qcow2 image at `file`, never over a file that exists (ZEN_CONFLICT); a staging file
 * left by a write cut off before is removed only when the caller says so (`replace`). An aborted
 * write leaves neither file. With `dataExtents`, a write outside them is refused (ZEN_BAD_REQUEST).
 * With `backing` (and `dataExtents`, which it needs), the image is an overlay of that file: it
 * reads as the backing file wherever the extents hold no data.
 */
export async function writeImage(
  file: string,
  capacityBytes: number,
  options: { replace?: boolean; dataExtents?: readonly Extent[]; backing?: Qcow2Backing } = {},
): Promise<DiskWriter> {
  if (existsSync(file))
    throw new ZenithError('ZEN_CONFLICT', `${file} exists: a restore never overwrites a disk`, {
      file,
    });
  if (options.backing && !options.dataExtents)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      'an overlay is written for known data extents: name them (dataExtents)',
      { field: 'dataExtents' },
    );
  let plan: Qcow2Plan | undefined;
  if (options.dataExtents)
    try {
      plan = Qcow2Plan.of(capacityBytes, options.dataExtents, options.backing);
    } catch (error) {
      if (error instanceof Qcow2LayoutError)
        throw new ZenithError('ZEN_BAD_REQUEST', `the disk's data extents: ${error.message}`, {
          field: 'dataExtents',
        });
      throw error;
    }
  const staging = stagingFile(file);
  if (options.replace) rmSync(staging, { force: true });
  let handle: FileHandle;
  try {
    handle = await open(staging, 'wx', IMAGE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new ZenithError(
        'ZEN_CONFLICT',
        `${file} is being written, or a write of it was cut off (${staging} is there)`,
        { file },
      );
    throw writeFailed(file, error);
  }
  /** Removes what this writer made (never a file at `file` it did not put there). */
  let published = false;
  const discard = async () => {
    await handle.close().catch(() => undefined);
    rmSync(staging, { force: true });
    if (published || !plan) rmSync(file, { force: true });
  };
  try {
    if (plan) {
      await handle.truncate(plan.sizeBytes);
      let at = 0;
      for (const part of plan.metadata()) {
        await writeAll(handle, part, at);
        at += part.length;
      }
    } else await handle.truncate(capacityBytes);
  } catch (error) {
    await discard();
    throw writeFailed(file, error);
  }
  let ended = false;
  const writable = () => {
    if (ended) throw new ZenithError('ZEN_INVALID_STATE', 'the disk writer has ended');
  };
  const inBounds = (offset: number, length: number) => {
    if (offset < 0 || length < 0 || offset + length > capacityBytes)
      throw new ZenithError('ZEN_BAD_REQUEST', `a write beyond the disk's ${capacityBytes} bytes`, {
        offset,
        length,
      });
  };
  /** Where the guest's bytes go in the staging file. */
  const placed = (offset: number, length: number) => {
    if (!plan) return [{ fileOffset: offset, length, from: 0 }];
    try {
      return plan.fileRanges(offset, length);
    } catch (error) {
      if (error instanceof Qcow2LayoutError)
        throw new ZenithError('ZEN_BAD_REQUEST', `a write outside the disk's data extents`, {
          offset,
          length,
        });
      throw error;
    }
  };
  const write = async (offset: number, data: Uint8Array) => {
    writable();
    inBounds(offset, data.length);
    for (const piece of placed(offset, data.length))
      await writeAll(
        handle,
        data.subarray(piece.from, piece.from + piece.length),
        piece.fileOffset,
      ).catch((error: unknown) => {
        throw writeFailed(file, error);
      });
  };
  /** Moves the finished image into place: never over a file that appeared meanwhile. */
  const publish = async () => {
    if (plan) {
      await handle.sync();
      await handle.close();
      await link(staging, file).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw new ZenithError('ZEN_CONFLICT', `${file} appeared while it was written`, { file });
        throw error;
      });
      published = true;
      await unlink(staging);
    } else {
      await handle.close();
      await convertImage(staging, file, () => undefined, new AbortController().signal, {
        sourceFormat: 'raw',
        outOfOrder: true,
      });
      const converted = await open(file, 'r');
      try {
        await converted.sync();
      } finally {
        await converted.close();
      }
      rmSync(staging, { force: true });
    }
    await syncDirectory(dirname(file));
  };
  return {
    capacityBytes,
    // An overlay reads as its backing file until written, not as zeroes.
    zeroed: !options.backing,
    write,
    async writeZeroes(offset, length) {
      writable();
      inBounds(offset, length);
      // Outside its extents an overlay shows its backing file: zeroes there cannot be written.
      if (options.backing) placed(offset, length);
      // A new image reads as zeroes: only where data may have been written are they written.
      const ranges = plan
        ? plan.extents
            .map((e) => [
              Math.max(e.offset, offset),
              Math.min(e.offset + e.length, offset + length),
            ])
            .filter(([from, to]) => from! < to!)
        : [[offset, offset + length]];
      const zeroes = Buffer.alloc(Math.min(length, 1 << 20));
      for (const [from, to] of ranges)
        for (let at = from!; at < to!;) {
          const piece = Math.min(zeroes.length, to! - at);
          await write(at, zeroes.subarray(0, piece));
          at += piece;
        }
    },
    async finish(): Promise<PortableDisk> {
      writable();
      ended = true;
      try {
        await publish();
      } catch (error) {
        await discard();
        throw writeFailed(file, error);
      }
      return {
        location: { path: file },
        format: 'qcow2',
        bus: 'virtio',
        capacityBytes,
        owned: true,
      };
    },
    async abort() {
      if (ended) return;
      ended = true;
      await discard();
    },
  };
}
