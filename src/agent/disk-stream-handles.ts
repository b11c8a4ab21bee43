/**
 * The agent's side of the disk-stream calls (protocol 1.5): the readers and writers one channel
 * opened on the host's disk-stream facet, each under a random handle only that channel knows.
 * When the channel drops (the control plane restarted or killed, the network cut), every reader is
 * closed (QEMU's export and its point-in-time overlay go) and every writer aborted (its image
 * removed): a restore run again writes its disk anew, a backup reads again.
 */
import { randomBytes } from 'node:crypto';
import { ZenithError } from '../core/errors.js';
import type {
  DiskExtent,
  DiskReader,
  DiskStreamFacet,
  DiskWriter,
} from '../hypervisors/facets/disk-streams.js';
import type { Logger } from '../core/logger.js';
import type { CallHandlers } from '../protocols/agent-channel/dispatcher.js';
import { extentsPerPage } from '../protocols/agent-channel/disk-stream-values.js';

export type DiskStreamMethod =
  | 'listStreamDisks'
  | 'openDiskReader'
  | 'readerExtents'
  | 'readDisk'
  | 'closeDiskReader'
  | 'openDiskWriter'
  | 'writeDisk'
  | 'writeDiskZeroes'
  | 'finishDiskWriter'
  | 'abortDiskWriter'
  | 'removeDiskImages'
  | 'listCheckpoints'
  | 'releaseCheckpoint'
  | 'mergeOverlay';

const newHandle = () => randomBytes(12).toString('hex');

export class DiskStreamHandles {
  readonly #readers = new Map<string, DiskReader>();
  readonly #writers = new Map<string, DiskWriter>();
  /** Where each reader's extents were last paged to: the next page goes on from there. */
  readonly #cursors = new Map<string, { next: number; extents: AsyncIterator<DiskExtent> }>();

  constructor(
    private readonly facet: DiskStreamFacet,
    private readonly logger: Logger,
  ) {}

  #reader(handle: string): DiskReader {
    const reader = this.#readers.get(handle);
    if (!reader)
      throw new ZenithError('ZEN_NOT_FOUND', `no disk reader ${handle} is open on this channel`);
    return reader;
  }

  #writer(handle: string): DiskWriter {
    const writer = this.#writers.get(handle);
    if (!writer)
      throw new ZenithError('ZEN_NOT_FOUND', `no disk writer ${handle} is open on this channel`);
    return writer;
  }

  /**
   * A page of the reader's extents from `from`: the walk goes on where the last page ended, or
   * starts again (and skips what ends before `from`) when asked for another offset.
   */
  async #extentPage(handle: string, from: number) {
    const reader = this.#reader(handle);
    let cursor = this.#cursors.get(handle);
    if (cursor?.next !== from) {
      await this.#dropCursor(handle);
      cursor = { next: 0, extents: reader.extents()[Symbol.asyncIterator]() };
      this.#cursors.set(handle, cursor);
    }
    const extents: DiskExtent[] = [];
    while (extents.length < extentsPerPage) {
      const step = await cursor.extents.next();
      if (step.done) {
        this.#cursors.delete(handle);
        return { extents, next: null };
      }
      const { offset, length, zero } = step.value;
      const end = offset + length;
      if (end <= from) continue;
      extents.push(offset < from ? { offset: from, length: end - from, zero } : step.value);
      cursor.next = end;
    }
    return { extents, next: cursor.next };
  }

  async #dropCursor(handle: string): Promise<void> {
    const cursor = this.#cursors.get(handle);
    this.#cursors.delete(handle);
    await cursor?.extents.return?.();
  }

  handlers(): Pick<CallHandlers, DiskStreamMethod> {
    const facet = this.facet;
    return {
      listStreamDisks: ([vmId]) => facet.listDisks(vmId),
      openDiskReader: async ([vmId, diskId, options], context) => {
        const reader = await facet.openReader(vmId, diskId, options, context);
        const handle = newHandle();
        this.#readers.set(handle, reader);
        return {
          handle,
          capacityBytes: reader.capacityBytes,
          scope: reader.scope,
          ...(reader.checkpoint ? { checkpoint: reader.checkpoint } : {}),
          ...(reader.quiesce
            ? {
                quiesce: {
                  quiesced: reader.quiesce.quiesced,
                  frozenFileSystems: reader.quiesce.frozenFileSystems,
                  ...(reader.quiesce.why ? { why: reader.quiesce.why.slice(0, 1024) } : {}),
                },
              }
            : {}),
        };
      },
      readerExtents: ([handle, from]) => this.#extentPage(handle, from),
      readDisk: async ([handle, offset, length]) =>
        (await this.#reader(handle).read(offset, length)).toString('base64'),
      closeDiskReader: async ([handle]) => {
        const reader = this.#readers.get(handle);
        this.#readers.delete(handle);
        await this.#dropCursor(handle);
        await reader?.close();
        return null;
      },
      openDiskWriter: async ([disk], context) => {
        const writer = await facet.openWriter(disk, context);
        const handle = newHandle();
        this.#writers.set(handle, writer);
        return {
          handle,
          capacityBytes: writer.capacityBytes,
          ...(writer.zeroed ? { zeroed: true } : {}),
        };
      },
      writeDisk: async ([handle, offset, data]) => {
        await this.#writer(handle).write(offset, Buffer.from(data, 'base64'));
        return null;
      },
      writeDiskZeroes: async ([handle, offset, length]) => {
        await this.#writer(handle).writeZeroes(offset, length);
        return null;
      },
      finishDiskWriter: async ([handle]) => {
        const disk = await this.#writer(handle).finish();
        this.#writers.delete(handle);
        return disk;
      },
      abortDiskWriter: async ([handle]) => {
        const writer = this.#writers.get(handle);
        this.#writers.delete(handle);
        await writer?.abort();
        return null;
      },
      removeDiskImages: async ([locations]) => {
        await facet.removeImages(locations);
        return null;
      },
      listCheckpoints: ([vmId, diskId]) => facet.listCheckpoints(vmId, diskId),
      releaseCheckpoint: async ([vmId, diskId, checkpoint]) => {
        await facet.releaseCheckpoint(vmId, diskId, checkpoint);
        return null;
      },
      mergeOverlay: async ([merge]) => {
        if (!facet.mergeOverlay)
          throw new ZenithError('ZEN_UNSUPPORTED', 'this host cannot merge disk overlays');
        await facet.mergeOverlay(merge);
        return null;
      },
    };
  }

  /** The channel dropped: what it left open is closed (readers) or undone (writers). */
  async closeAll(): Promise<void> {
    const readers = [...this.#readers.values()];
    const writers = [...this.#writers.values()];
    const cursors = [...this.#cursors.keys()];
    this.#readers.clear();
    this.#writers.clear();
    for (const handle of cursors) await this.#dropCursor(handle).catch(() => undefined);
    for (const reader of readers)
      await reader
        .close()
        .catch((error: unknown) =>
          this.logger.warn({ err: error }, 'a disk reader left by the channel did not close'),
        );
    for (const writer of writers)
      await writer
        .abort()
        .catch((error: unknown) =>
          this.logger.warn({ err: error }, 'a disk writer left by the channel was not undone'),
        );
    if (readers.length + writers.length > 0)
      this.logger.info(
        { readers: readers.length, writers: writers.length },
        'the disk streams the channel left open are closed',
      );
  }
}
