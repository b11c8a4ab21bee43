/**
 * An agent host's disk-stream facet: calls over the channel to the disk-stream facet of the
 * agent's QEMU driver (protocol 1.5). A reader or writer is opened at the agent and named by a
 * handle; its bytes cross in base64 pieces of at most 512 KiB, several in flight for one read or
 * write. The agent closes what a dropped channel left open (readers closed, writers aborted), so a
 * killed control plane leaves no export or half-written image held at the agent.
 */
import { ZenithError } from '../../core/errors.js';
import { diskPieceBytes } from '../../protocols/agent-channel/disk-stream-values.js';
import type { ActionContext } from '../driver-types.js';
import type {
  DiskCheckpoint,
  DiskExtent,
  DiskReadOptions,
  DiskReader,
  DiskStreamFacet,
  DiskWriter,
  NewDisk,
  OverlayMerge,
  StreamDisk,
} from '../facets/disk-streams.js';
import type { PortableDisk, PortableLocation } from '../facets/portable-vm.js';
import type { CallResult } from '../../protocols/agent-channel/call-map.js';
import type { AgentCaller } from './agent-caller.js';

/** Pieces of [offset, offset + length) of at most one piece's size. */
function pieces(offset: number, length: number): Array<[number, number]> {
  const all: Array<[number, number]> = [];
  for (let at = 0; at < length; at += diskPieceBytes)
    all.push([offset + at, Math.min(diskPieceBytes, length - at)]);
  return all;
}

/** A call that opens something at the agent waits as long as QEMU may take to set it up. */
const openTimeoutMs = 2 * 60_000;

export class AgentDiskStreams implements DiskStreamFacet {
  constructor(private readonly agent: AgentCaller) {}

  listDisks(vmExternalId: string): Promise<StreamDisk[]> {
    return this.agent.call('listStreamDisks', [vmExternalId], 60_000);
  }

  async openReader(
    vmExternalId: string,
    diskId: string,
    options: DiskReadOptions,
    context: ActionContext,
  ): Promise<DiskReader> {
    const opened = await this.agent.call(
      'openDiskReader',
      [
        vmExternalId,
        diskId,
        {
          ...(options.changedSince ? { changedSince: options.changedSince } : {}),
          ...(options.checkpointTag ? { checkpointTag: options.checkpointTag } : {}),
        },
      ],
      openTimeoutMs,
      context,
    );
    const agent = this.agent;
    let closed = false;
    return {
      capacityBytes: opened.capacityBytes,
      scope: opened.scope,
      ...(opened.checkpoint ? { checkpoint: opened.checkpoint } : {}),
      ...(opened.quiesce ? { quiesce: opened.quiesce } : {}),
      async *extents(): AsyncIterable<DiskExtent> {
        // A page at a time: a disk written here and there has more runs than a frame holds.
        for (let from: number | null = 0; from !== null;) {
          const page: CallResult<'readerExtents'> = await agent.call(
            'readerExtents',
            [opened.handle, from],
            openTimeoutMs,
          );
          yield* page.extents;
          from = page.next;
        }
      },
      async read(offset: number, length: number): Promise<Buffer> {
        const parts = await Promise.all(
          pieces(offset, length).map(async ([at, size]) => {
            const bytes = Buffer.from(
              await agent.call('readDisk', [opened.handle, at, size]),
              'base64',
            );
            if (bytes.length !== size)
              throw new ZenithError(
                'ZEN_DRIVER_ERROR',
                `the agent answered ${bytes.length} bytes of the disk for ${size}`,
                { offset: at },
              );
            return bytes;
          }),
        );
        return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      },
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        // An agent gone meanwhile closed it itself when the channel dropped.
        await agent
          .call('closeDiskReader', [opened.handle], openTimeoutMs)
          .catch((error: unknown) => {
            if (agent.open()) throw error;
          });
      },
    };
  }

  async openWriter(disk: NewDisk, context: ActionContext): Promise<DiskWriter> {
    const opened = await this.agent.call(
      'openDiskWriter',
      [
        {
          location: disk.location,
          format: disk.format,
          capacityBytes: disk.capacityBytes,
          ...(disk.replace !== undefined ? { replace: disk.replace } : {}),
          ...(disk.dataExtents
            ? {
                dataExtents: disk.dataExtents.map(([offset, length]): [number, number] => [
                  offset,
                  length,
                ]),
              }
            : {}),
          ...(disk.backing ? { backing: disk.backing } : {}),
        },
      ],
      openTimeoutMs,
      context,
    );
    const agent = this.agent;
    return {
      capacityBytes: opened.capacityBytes,
      ...(opened.zeroed ? { zeroed: true } : {}),
      async write(offset: number, data: Uint8Array): Promise<void> {
        const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        await Promise.all(
          pieces(0, bytes.length).map(([at, size]) =>
            agent.call('writeDisk', [
              opened.handle,
              offset + at,
              bytes.subarray(at, at + size).toString('base64'),
            ]),
          ),
        );
      },
      async writeZeroes(offset: number, length: number): Promise<void> {
        if (length > 0) await agent.call('writeDiskZeroes', [opened.handle, offset, length]);
      },
      finish(): Promise<PortableDisk> {
        return agent.call('finishDiskWriter', [opened.handle], openTimeoutMs);
      },
      async abort(): Promise<void> {
        await agent
          .call('abortDiskWriter', [opened.handle], openTimeoutMs)
          .catch((error: unknown) => {
            // An agent gone meanwhile aborted it itself when the channel dropped.
            if (agent.open()) throw error;
          });
      },
    };
  }

  async removeImages(locations: PortableLocation[]): Promise<void> {
    await this.agent.call('removeDiskImages', [locations], 60_000);
  }

  /**
   * Agents of protocol 1.6 and later (replica chains); an older agent's facet has none, so that
   * replication refuses it as a target at once rather than at its first merge.
   */
  get mergeOverlay(): ((merge: OverlayMerge) => Promise<void>) | undefined {
    if (!this.agent.open()?.supports('mergeOverlay')) return undefined;
    return async (merge) => {
      // Folding a disk's data into another takes as long as copying it.
      await this.agent.call('mergeOverlay', [merge], 600_000);
    };
  }

  listCheckpoints(vmExternalId: string, diskId: string): Promise<DiskCheckpoint[]> {
    return this.agent.call('listCheckpoints', [vmExternalId, diskId], 60_000);
  }

  async releaseCheckpoint(
    vmExternalId: string,
    diskId: string,
    checkpoint: DiskCheckpoint,
  ): Promise<void> {
    await this.agent.call('releaseCheckpoint', [vmExternalId, diskId, checkpoint], 60_000);
  }
}
