/**
 * The agent's side of the storage-scan calls (protocol 1.10): a scan runs whole on the host, is
 * kept under a random id only this channel knows, and is read a page at a time — pages cut to stay
 * well inside the channel's 1 MiB frames, whatever the paths' lengths. A scan is dropped when its
 * last page is read, after five minutes, or with the channel.
 */
import { randomBytes } from 'node:crypto';
import { ZenithError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type {
  ScannedImage,
  StorageScan,
  StorageScanFacet,
} from '../hypervisors/facets/storage-scan.js';
import type { CallHandlers } from '../protocols/agent-channel/dispatcher.js';

export type StorageScanMethod = 'startStorageScan' | 'readStorageScan';

/** What one page may carry, in JSON bytes (the frame is 1 MiB; the envelope is small). */
const pageBytes = 512 * 1024;
const keepMs = 5 * 60_000;

export class StorageScanHandles {
  readonly #scans = new Map<string, { images: ScannedImage[]; until: number }>();

  constructor(
    private readonly facet: StorageScanFacet,
    private readonly clock: Clock,
  ) {}

  handlers(): Pick<CallHandlers, StorageScanMethod> {
    return {
      startStorageScan: async (_args, context) => {
        const scan: StorageScan = await this.facet.scanStorage(context);
        const now = this.clock.now();
        for (const [id, kept] of this.#scans) if (kept.until < now) this.#scans.delete(id);
        const scanId = randomBytes(12).toString('hex');
        // A scan with no images has no page to read: nothing is kept.
        if (scan.images.length > 0)
          this.#scans.set(scanId, { images: scan.images, until: now + keepMs });
        const { images, ...summary } = scan;
        return { ...summary, scanId, imageCount: images.length };
      },
      readStorageScan: async ([scanId, offset]) => {
        const kept = this.#scans.get(scanId);
        if (!kept)
          throw new ZenithError(
            'ZEN_NOT_FOUND',
            `no storage scan ${scanId} (it expired, or was read)`,
            {
              scanId,
            },
          );
        const images: ScannedImage[] = [];
        let size = 0;
        let index = offset;
        for (; index < kept.images.length; index++) {
          const image = kept.images[index]!;
          size += JSON.stringify(image).length + 1;
          if (images.length > 0 && size > pageBytes) break;
          images.push(image);
        }
        const next = index < kept.images.length ? index : null;
        if (next === null) this.#scans.delete(scanId);
        return { images, next };
      },
    };
  }

  close(): void {
    this.#scans.clear();
  }
}
