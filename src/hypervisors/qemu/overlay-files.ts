/**
 * Overlays as files, whichever family keeps them (the QEMU driver in its storage roots, a libvirt
 * host in its directory pools): the backing image a new overlay may have, and folding an overlay
 * into its backing image — each step safe to run again after a cut-off.
 */
import { existsSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ZenithError } from '../../core/errors.js';
import { syncDirectory } from './image-writer.js';
import { commitImage, imageInfo, pointBackingAt } from './qemu-img.js';

/** An overlay's backing image: an existing qcow2 of the overlay's size. */
export async function overlayBacking(file: string, capacityBytes: number) {
  if (!existsSync(file))
    throw new ZenithError('ZEN_NOT_FOUND', `the backing image ${file} is not there`, { file });
  const info = await imageInfo(file);
  if (info.format !== 'qcow2' || info.virtualSizeBytes !== capacityBytes)
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `an overlay's backing image must be a qcow2 of its size (${file} is a ${info.format} of ${info.virtualSizeBytes} bytes)`,
      { file },
    );
  return { file, format: 'qcow2' as const };
}

/**
 * Folds `overlay` into `backing` (qemu-img commit), points `above` (an overlay of `overlay`) at
 * `backing`, and removes `overlay`. A missing overlay is one merged already. `unused` refuses a
 * file a VM of the host has open or defined (ZEN_DISK_IN_USE); qemu-img's lock refuses one a QEMU
 * holds open as a backing file.
 */
export async function mergeOverlayFiles(
  files: { overlay: string; backing: string; above: string | null },
  unused: (file: string) => Promise<void> | void,
): Promise<void> {
  const { overlay, backing, above } = files;
  for (const file of [overlay, backing, ...(above ? [above] : [])])
    if (existsSync(file)) await unused(file);
  if (existsSync(overlay)) {
    const under = (await imageInfo(overlay)).backingFile;
    if (under === null || resolve(dirname(overlay), under) !== resolve(backing))
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${overlay} is not an overlay of ${backing}: nothing is merged`,
        { file: overlay },
      );
    await commitImage(overlay);
  }
  // Once the overlay's data is in its backing image, the image above may read through that.
  if (above) await pointBackingAt(above, backing);
  rmSync(overlay, { force: true });
  await syncDirectory(dirname(backing));
}
