/**
 * An agent host's storage-scan facet: the scan runs on the agent (protocol 1.10), which keeps it
 * while its images are read a page at a time (a scan of thousands of files is more than a frame).
 */
import type { ActionContext } from '../driver-types.js';
import type { ScannedImage, StorageScan, StorageScanFacet } from '../facets/storage-scan.js';
import type { AgentCaller } from './agent-caller.js';

/** A scan of a large root reads every header on the host: it is given time. */
const scanTimeoutMs = 10 * 60_000;

export class AgentStorageScan implements StorageScanFacet {
  constructor(private readonly agent: AgentCaller) {}

  async scanStorage(context: ActionContext): Promise<StorageScan> {
    const { scanId, imageCount, ...summary } = await this.agent.call(
      'startStorageScan',
      [],
      scanTimeoutMs,
      context,
    );
    const images: ScannedImage[] = [];
    let next: number | null = imageCount > 0 ? 0 : null;
    while (next !== null) {
      const page = await this.agent.call('readStorageScan', [scanId, next], 60_000, context);
      images.push(...page.images);
      next = page.next;
      context.progress({
        percent: Math.floor((images.length / Math.max(imageCount, 1)) * 100),
        message: `${images.length} of ${imageCount} images read from the agent`,
      });
    }
    return { ...summary, images };
  }
}
