/**
 * A disk read or written over NBD as the disk-stream facet speaks it: QEMU exports a disk (its NBD
 * server, or qemu-nbd for a disk no QEMU holds) and these turn the export into a DiskReader — all
 * of it, holes and zeroes known from `base:allocation`, or only the extents a dirty bitmap marks —
 * or a DiskWriter into a new image.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { NbdClient, type NbdConnectOptions, type NbdTarget } from '../../protocols/nbd/client.js';
import { AllocationFlag, DIRTY } from '../../protocols/nbd/constants.js';
import type { DiskExtent, DiskReader, DiskWriter } from '../facets/disk-streams.js';
import type { PortableDisk } from '../facets/portable-vm.js';
import { startQemuNbd } from './qemu-nbd.js';

export const ALLOCATION = 'base:allocation';

/**
 * Connects, asking again while the server refuses (qemu-nbd creates its socket a moment before it
 * listens) for up to 5 s.
 */
async function connect(target: NbdTarget, options: NbdConnectOptions): Promise<NbdClient> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await NbdClient.connect(target, options);
    } catch (error) {
      const refused =
        isZenithError(error) &&
        error.code === 'NBD_CONNECT_FAILED' &&
        error.details.reason === 'ECONNREFUSED';
      if (!refused || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
export const dirtyBitmapContext = (bitmap: string) => `qemu:dirty-bitmap:${bitmap}`;

/**
 * The protocol's failures (NBD_CLOSED when QEMU or qemu-nbd ends mid-read, a refused request) as
 * the catalogue's: a task that read or wrote a disk fails with a code callers know.
 */
function asDriverError(error: unknown): never {
  if (isZenithError(error) && error.code.startsWith('NBD_'))
    throw new ZenithError(
      'ZEN_DRIVER_ERROR',
      `the disk's NBD export failed: ${error.message} (its QEMU or qemu-nbd may have ended)`,
      { nbd: error.code },
    );
  throw error;
}

/**
 * The reads of VMs' disks under way in this process, one per VM at a time (a QEMU has one NBD
 * server; libvirt runs one backup job per domain): a second is refused (ZEN_CONFLICT) until the
 * first reader closes.
 */
export class ReadsUnderWay {
  readonly #reading = new Set<string>();

  async open(vm: string, name: string, open: () => Promise<DiskReader>): Promise<DiskReader> {
    if (this.#reading.has(vm))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `a disk of ${name} is being read already: one read at a time`,
      );
    this.#reading.add(vm);
    const done = () => this.#reading.delete(vm);
    try {
      const reader = await open();
      return {
        ...reader,
        close: async () => {
          try {
            await reader.close();
          } finally {
            done();
          }
        },
      };
    } catch (error) {
      done();
      throw error;
    }
  }
}

/**
 * Reads an export: in full, or (`changedSince`: a bitmap the export offers) only what the bitmap
 * marks as written. `release` runs when the reader closes (it ends the export).
 */
export async function openNbdReader(
  target: NbdTarget,
  options: { exportName: string; changedSince?: string; release?: () => Promise<void> },
): Promise<DiskReader> {
  const context = options.changedSince ? dirtyBitmapContext(options.changedSince) : ALLOCATION;
  const client = await connect(target, { exportName: options.exportName, metaContexts: [context] });
  let closed = false;
  return {
    capacityBytes: client.size,
    scope: options.changedSince ? 'changed' : 'full',
    async *extents(): AsyncGenerator<DiskExtent> {
      yield* translated(client.extents(context));
    },
    read: (offset, length) => client.read(offset, length).catch(asDriverError),
    async close() {
      if (closed) return;
      closed = true;
      await client.close().catch(() => client.destroy());
      await options.release?.();
    },
  };

  async function* translated(
    extents: AsyncIterable<{ offset: number; length: number; flags: number }>,
  ): AsyncGenerator<DiskExtent> {
    try {
      for await (const extent of extents) {
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
    } catch (error) {
      asDriverError(error);
    }
  }
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
    /** The image is new: it reads as zeroes until written. */
    zeroed?: boolean;
  },
): Promise<DiskWriter> {
  const client = await connect(target, { exportName: options.exportName });
  if (client.readOnly) {
    client.destroy();
    throw new ZenithError('ZEN_DRIVER_ERROR', 'the export to write a disk into is read-only');
  }
  let ended = false;
  return {
    capacityBytes: client.size,
    ...(options.zeroed ? { zeroed: true } : {}),
    write: (offset, data) => client.write(offset, data).catch(asDriverError),
    writeZeroes: (offset, length) => client.writeZeroes(offset, length).catch(asDriverError),
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

/** Unix socket paths are short (108 bytes): these live in the system's temporary directory. */
export const socketPath = () => join(tmpdir(), `zenith-nbd-${randomBytes(8).toString('hex')}.sock`);

/**
 * Reads an image no QEMU holds, through a qemu-nbd of its own (read-only, one client: it ends when
 * the reader closes, or when this process dies).
 */
export async function readImage(
  file: string,
  options: { changedSince?: string; format?: 'qcow2' | 'raw' } = {},
): Promise<DiskReader> {
  const socket = socketPath();
  const server = await startQemuNbd({
    image: file,
    socket,
    readOnly: true,
    ...(options.format ? { format: options.format } : {}),
    ...(options.changedSince ? { bitmap: options.changedSince } : {}),
  });
  const release = async () => {
    await server.stop();
    rmSync(socket, { force: true });
  };
  try {
    return await openNbdReader(
      { path: socket },
      {
        exportName: 'disk0',
        ...(options.changedSince ? { changedSince: options.changedSince } : {}),
        release,
      },
    );
  } catch (error) {
    await release();
    throw error;
  }
}
