/**
 * A disk read or written over NBD as the disk-stream facet speaks it: QEMU exports a disk (its NBD
 * server, or qemu-nbd for a disk no QEMU holds) and these turn the export into a DiskReader — all
 * of it, holes and zeroes known from `base:allocation`, or only the extents a dirty bitmap marks —
 * or a DiskWriter into a new image.
 */
import { ZenithError } from '../../core/errors.js';
import { NbdClient, type NbdTarget } from '../../protocols/nbd/client.js';
import { AllocationFlag, DIRTY } from '../../protocols/nbd/constants.js';
import type { DiskExtent, DiskReader, DiskWriter } from '../facets/disk-streams.js';
import type { PortableDisk } from '../facets/portable-vm.js';

export const ALLOCATION = 'base:allocation';
export const dirtyBitmapContext = (bitmap: string) => `qemu:dirty-bitmap:${bitmap}`;

/**
 * Reads an export: in full, or (`changedSince`: a bitmap the export offers) only what the bitmap
 * marks as written. `release` runs when the reader closes (it ends the export).
 */
export async function openNbdReader(
  target: NbdTarget,
  options: { exportName: string; changedSince?: string; release?: () => Promise<void> },
): Promise<DiskReader> {
  const context = options.changedSince ? dirtyBitmapContext(options.changedSince) : ALLOCATION;
  const client = await NbdClient.connect(target, {
    exportName: options.exportName,
    metaContexts: [context],
  });
  let closed = false;
  return {
    capacityBytes: client.size,
    scope: options.changedSince ? 'changed' : 'full',
    async *extents(): AsyncGenerator<DiskExtent> {
      for await (const extent of client.extents(context)) {
        if (options.changedSince) {
          // Only what the bitmap marks; the rest did not change.
          if (extent.flags & DIRTY)
            yield { offset: extent.offset, length: extent.length, zero: false };
        } else {
          yield {
            offset: extent.offset,
            length: extent.length,
            zero: (extent.flags & AllocationFlag.ZERO) !== 0,
          };
        }
      }
    },
    read: (offset, length) => client.read(offset, length),
    async close() {
      if (closed) return;
      closed = true;
      await client.close().catch(() => client.destroy());
      await options.release?.();
    },
  };
}

/**
 * Writes into an export of a new image. `finish` flushes and closes, then `complete` (which ends the
 * export and answers the disk); `abort` closes and runs `discard` (which removes the image).
 */
export async function openNbdWriter(
  target: NbdTarget,
  options: {
    exportName: string;
    complete: () => Promise<PortableDisk>;
    discard: () => Promise<void>;
  },
): Promise<DiskWriter> {
  const client = await NbdClient.connect(target, { exportName: options.exportName });
  if (client.readOnly) {
    client.destroy();
    throw new ZenithError('ZEN_DRIVER_ERROR', 'the export to write a disk into is read-only');
  }
  let ended = false;
  return {
    capacityBytes: client.size,
    write: (offset, data) => client.write(offset, data),
    writeZeroes: (offset, length) => client.writeZeroes(offset, length),
    async finish() {
      if (ended) throw new ZenithError('ZEN_INVALID_STATE', 'the disk writer has ended');
      ended = true;
      await client.flush();
      await client.close();
      return options.complete();
    },
    async abort() {
      if (ended) return;
      ended = true;
      client.destroy();
      await options.discard();
    },
  };
}
